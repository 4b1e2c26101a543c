// libFuzzer target: protobuf decoding of every request message the server accepts (the
// protobuf-c bridges of SwaplineMessages).
//
// Input: a byte choosing the message type, then its wire bytes. A message that decodes must
// survive a round trip: re-encoded and decoded again, it is the same value.
import FuzzDriver
import NIOCore
import SwaplineMessages

/// A decoding check for every message a client sends to the server's methods (ServiceMethods.swift).
let checks: [(ByteBuffer) -> Void] = [
    checkDecoding(as: Swapline_V1_CreateTaskRequest.self), checkDecoding(as: Swapline_V1_ProcessSyncRequest.self),
    checkDecoding(as: Swapline_V1_GetTaskRequest.self), checkDecoding(as: Swapline_V1_CancelTaskRequest.self),
    checkDecoding(as: Swapline_V1_WatchTaskRequest.self), checkDecoding(as: Swapline_V1_FetchTaskRequest.self),
    checkDecoding(as: Swapline_V1_UpdateStatusRequest.self), checkDecoding(as: Grpc_Health_V1_HealthCheckRequest.self),
    checkDecoding(as: Grpc_Testing_Empty.self), checkDecoding(as: Grpc_Testing_SimpleRequest.self),
    checkDecoding(as: Grpc_Testing_StreamingOutputCallRequest.self),
]

runFuzzer { bytes in
    guard let selector = bytes.first else { return }
    checks[Int(selector) % checks.count](ByteBuffer(bytes: bytes.dropFirst()))
}

func checkDecoding<Message: ProtoMessage & Equatable>(as type: Message.Type) -> (ByteBuffer) -> Void {
    { wire in checkDecoding(Message.self, wire) }
}

func checkDecoding<Message: ProtoMessage & Equatable>(_ type: Message.Type, _ wire: ByteBuffer) {
    guard let message = try? Message(protobufBytes: wire) else { return }
    let encoded = message.serializedBuffer()
    let again: Message
    do {
        again = try Message(protobufBytes: encoded)
    } catch {
        fatalError("\(Message.self) re-encoded from a decoded message does not decode: \(error)")
    }
    precondition(again.serializedBuffer().readableBytes == encoded.readableBytes, "\(Message.self) changed size in a round trip")
    // A message that is not equal to itself holds a NaN float, which no round trip can keep equal.
    if message == message {
        precondition(again == message, "\(Message.self) changed in a round trip")
    }
}
