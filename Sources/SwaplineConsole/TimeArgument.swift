/// A point in time as people type it on the command line (`list --created-after`): milliseconds
/// since the Unix epoch, or ISO 8601 (`2026-12-04`, `2026-12-04T23:50:01`, with `.123`, and a
/// `Z` or `+01:00` zone; no zone means UTC, as `get` and the REST JSON print times).
public enum TimeArgument {
    public static func milliseconds(_ text: String) -> Int64? {
        if !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) { return Int64(text) }
        var scanner = Scanner(Array(text.utf8))
        guard let year = scanner.number(digits: 4), scanner.skip("-"), let month = scanner.number(digits: 2), scanner.skip("-"),
            let day = scanner.number(digits: 2), (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day)
        else { return nil }
        var milliseconds = daysFromCivil(year: year, month: month, day: day) * 86_400_000
        if scanner.atEnd { return milliseconds }
        guard scanner.skip("T") || scanner.skip(" "), let hour = scanner.number(digits: 2), scanner.skip(":"),
            let minute = scanner.number(digits: 2), scanner.skip(":"), let second = scanner.number(digits: 2), hour < 24, minute < 60,
            second < 60
        else { return nil }
        milliseconds += ((hour * 60 + minute) * 60 + second) * 1000
        if scanner.skip(".") {
            guard let (fraction, digits) = scanner.digits(), digits > 0 else { return nil }
            milliseconds += digits >= 3 ? fraction / power10(digits - 3) : fraction * power10(3 - digits)
        }
        if scanner.skip("Z") || scanner.atEnd { return scanner.atEnd ? milliseconds : nil }
        let sign: Int64 = scanner.skip("+") ? 1 : scanner.skip("-") ? -1 : 0
        guard sign != 0, let zoneHours = scanner.number(digits: 2), scanner.skip(":"), let zoneMinutes = scanner.number(digits: 2),
            zoneHours < 24, zoneMinutes < 60, scanner.atEnd
        else { return nil }
        return milliseconds - sign * (zoneHours * 60 + zoneMinutes) * 60_000
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, the inverse of
    /// `LegacyJSON.isoTimestamp`'s).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func power10(_ exponent: Int) -> Int64 {
        (0..<exponent).reduce(1) { value, _ in value * 10 }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        /// Exactly `digits` decimal digits.
        mutating func number(digits: Int) -> Int64? {
            guard index + digits <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<index + digits] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }

        /// As many digits as there are (up to 9, a nanosecond), and how many.
        mutating func digits() -> (Int64, Int)? {
            var count = 0
            while index + count < bytes.count, count < 9, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index + count]) {
                count += 1
            }
            return count == 0 ? nil : number(digits: count).map { ($0, count) }
        }
    }
}
