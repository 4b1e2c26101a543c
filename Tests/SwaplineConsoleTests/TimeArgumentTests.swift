import SwaplineConsole
import SwaplineMessages
import Testing

@Suite struct TimeArgumentTests {
    @Test(arguments: [
        ("1733356200000", Int64(1_733_356_200_000)),
        ("0", 0),
        ("2024-12-04", 1_733_270_400_000),
        ("2024-12-04T23:50:00", 1_733_356_200_000),
        ("2024-12-04 23:50:00", 1_733_356_200_000),
        ("2024-12-04T23:50:00Z", 1_733_356_200_000),
        ("2024-12-04T23:50:00.5Z", 1_733_356_200_500),
        ("2024-12-04T23:50:00.123456Z", 1_733_356_200_123),
        ("2024-12-05T00:50:00+01:00", 1_733_356_200_000),
        ("2024-12-04T20:50:00-03:00", 1_733_356_200_000),
        ("2000-02-29", 951_782_400_000),
        ("1969-12-31T23:59:59", -1000),
    ])
    func parsesMillisecondsAndISO8601(text: String, expected: Int64) {
        #expect(TimeArgument.milliseconds(text) == expected)
    }

    @Test(arguments: [
        "", "yesterday", "2024-13-01", "2023-02-29", "2024-12-04T24:00:00", "2024-12-04T23:50", "2024-12-04T23:50:00.",
        "2024-12-04T23:50:00+1", "2024-12-04T23:50:00Zx", "-5", "2024-12-04x",
    ])
    func refusesAnythingElse(text: String) {
        #expect(TimeArgument.milliseconds(text) == nil)
    }

    @Test func roundTripsWhatTablesPrint() {
        for milliseconds in stride(from: Int64(-86_400_000 * 400), through: 86_400_000 * 40_000, by: 86_400_000 * 37 + 3_661_000) {
            #expect(TimeArgument.milliseconds(TaskTable.time(milliseconds)) == milliseconds)
        }
    }
}
