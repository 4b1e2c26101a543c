import Foundation
import SwaplineCore
import Testing

/// Timestamps agree with Foundation's ISO 8601 formatting to the second (its milliseconds go
/// through a Double and may come out one lower), across leap years and before 1970.
@Suite struct UTCTimestampTests {
    @Test(arguments: [Int64(0), 951_782_400_000, 951_868_799_999, 1_798_500_384_123, 4_107_542_399_999, -1, -86_400_001, 253_402_300_799_999])
    func matchesFoundation(ms: Int64) {
        let milliseconds = (ms % 1000 + 1000) % 1000
        let wholeSeconds = Date(timeIntervalSince1970: Double((ms - milliseconds) / 1000)).formatted(Date.ISO8601FormatStyle())
        let fraction = String(milliseconds + 1000).dropFirst()
        #expect(UTCTimestamp.format(millisecondsSince1970: ms, withMilliseconds: true) == wholeSeconds.dropLast() + ".\(fraction)")
        #expect(UTCTimestamp.format(millisecondsSince1970: ms, withMilliseconds: false) == String(wholeSeconds.dropLast()))
    }
}
