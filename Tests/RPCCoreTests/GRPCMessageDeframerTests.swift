import NIOCore
import Testing
@testable import RPCCore

@Suite struct GRPCMessageDeframerTests {
    private func frame(_ bytes: [UInt8], flag: UInt8 = 0, declaredLength: UInt32? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flag)
        buffer.writeInteger(declaredLength ?? UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    @Test func splitsMessagesAcrossArbitraryChunks() throws {
        var wire = frame([1, 2, 3])
        var second = frame([])
        var third = frame(Array(repeating: 9, count: 300))
        wire.writeBuffer(&second)
        wire.writeBuffer(&third)
        var deframer = GRPCMessageDeframer(maxMessageSize: 1024)
        var messages: [[UInt8]] = []
        while let chunk = wire.readSlice(length: min(7, wire.readableBytes)) {
            deframer.append(chunk)
            while let message = try deframer.next() { messages.append(Array(message.readableBytesView)) }
            if wire.readableBytes == 0 { break }
        }
        try deframer.finish()
        #expect(messages == [[1, 2, 3], [], Array(repeating: 9, count: 300)])
    }

    @Test func refusesAnOversizedMessageFromItsPrefixAlone() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 4 * 1024 * 1024)
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(5 * 1024 * 1024))
        deframer.append(prefix)
        #expect(throws: GRPCMessageDeframer.Failure.messageTooLarge(declared: 5 * 1024 * 1024, limit: 4 * 1024 * 1024)) {
            try deframer.next()
        }
    }

    @Test func refusesCompressedMessages() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 1024)
        deframer.append(frame([1], flag: 1))
        #expect(throws: GRPCMessageDeframer.Failure.compressedMessage) { try deframer.next() }
        #expect(GRPCMessageDeframer.Failure.compressedMessage.status.code == .unimplemented)
    }

    @Test func reportsATruncatedBody() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 1024)
        deframer.append(frame([1, 2], declaredLength: 10))
        #expect(try deframer.next() == nil)
        #expect(throws: GRPCMessageDeframer.Failure.truncatedMessage) { try deframer.finish() }
    }

    @Test func framerWritesPrefixAndMessage() {
        var out = ByteBuffer()
        GRPCMessageFramer.frame(ByteBuffer(bytes: [7, 8]), into: &out)
        #expect(Array(out.readableBytesView) == [0, 0, 0, 0, 2, 7, 8])
        var inPlace = ByteBuffer()
        GRPCMessageFramer.frame(into: &inPlace) { $0.writeBytes([1, 2, 3]) }
        #expect(Array(inPlace.readableBytesView) == [0, 0, 0, 0, 3, 1, 2, 3])
    }
}
