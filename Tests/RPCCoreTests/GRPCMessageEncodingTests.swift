import Testing
@testable import RPCCore

@Suite struct GRPCMessageEncodingTests {
    @Test func leavesPrintableASCIIAlone() {
        #expect(GRPCMessageEncoding.encode("task not found: task_01") == "task not found: task_01")
    }

    @Test func escapesPercentControlAndNonASCII() {
        #expect(GRPCMessageEncoding.encode("100%\n") == "100%25%0A")
        #expect(GRPCMessageEncoding.encode("☺") == "%E2%98%BA")
    }

    @Test func roundTripsTheInteropSpecialMessage() {
        let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
        let encoded = GRPCMessageEncoding.encode(message)
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
        #expect(GRPCMessageEncoding.decode(encoded) == message)
    }

    @Test func keepsMalformedEscapesAsTheyAre() {
        #expect(GRPCMessageEncoding.decode("50%") == "50%")
        #expect(GRPCMessageEncoding.decode("%zz%4") == "%zz%4")
        #expect(GRPCMessageEncoding.decode("a%41") == "aA")
    }
}
