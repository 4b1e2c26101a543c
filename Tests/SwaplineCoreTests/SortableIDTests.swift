import Testing
@testable import SwaplineCore

@Suite struct SortableIDTests {
    @Test func idsOfOneMillisecondSortInOrderButDoNotGiveEachOtherAway() {
        let ids = SortableIDGenerator(clock: WallClock { 1_700_000_000_000 })
        let made = (0..<1_000).map { _ in ids.next() }
        #expect(made == made.sorted() && Set(made).count == made.count)
        #expect(made.allSatisfy { $0.count == 26 && $0.hasPrefix(String(made[0].prefix(10))) })
        // Counting up by one would make the last character of consecutive ids differ by one
        // almost every time; random steps make that rare.
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        let byOne = zip(made, made.dropFirst()).filter { a, b in
            a.dropLast() == b.dropLast()
                && alphabet.firstIndex(of: b.last!)! == alphabet.firstIndex(of: a.last!)! + 1
        }
        #expect(byOne.count < 10)
    }
}
