/// One block of addresses that a fetch of a client's URL must never reach.
public struct SpecialPurposeBlock: Sendable, Equatable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int
    /// What the block is, in a few words ("loopback", "private-use").
    public let name: String
    /// Where it is defined.
    public let reference: String

    public var description: String { "\(name) (\(network)/\(prefixLength))" }
}

/// The addresses the URL policy refuses: every block of the IANA IPv4 and IPv6 Special-Purpose
/// Address Registries that is not globally reachable, multicast, and the IPv6 space outside
/// global unicast. docs/security.md prints this table with the reasons for each choice.
///
/// Addresses that embed an IPv4 address are judged by it: IPv4-mapped (`::ffff:0:0/96`,
/// which a dual-stack socket connects to as the IPv4 address), the well-known NAT64 prefix
/// (`64:ff9b::/96`, which a NAT64 gateway forwards to it) and the deprecated IPv4-compatible
/// form (`::/96`, refused even when the embedded address is public).
public enum SpecialPurposeAddresses {
    /// Most specific first where blocks nest, so the name given is the most precise one.
    public static let ipv4: [SpecialPurposeBlock] = [
        block(0x0000_0000, 8, "this network; 0.0.0.0 connects to the local host", "RFC 791, RFC 1122 §3.2.1.3"),
        block(0x0A00_0000, 8, "private-use", "RFC 1918"),
        block(0x6440_0000, 10, "shared address space (carrier-grade NAT)", "RFC 6598"),
        block(0x7F00_0000, 8, "loopback", "RFC 1122 §3.2.1.3"),
        block(0xA9FE_0000, 16, "link-local, incl. the cloud metadata service 169.254.169.254", "RFC 3927"),
        block(0xAC10_0000, 12, "private-use", "RFC 1918"),
        block(0xC000_0000, 24, "IETF protocol assignments (DS-Lite, NAT64 discovery, PCP/TURN anycast)", "RFC 6890"),
        block(0xC000_0200, 24, "documentation (TEST-NET-1)", "RFC 5737"),
        block(0xC058_6300, 24, "deprecated 6to4 relay anycast", "RFC 7526"),
        block(0xC0A8_0000, 16, "private-use", "RFC 1918"),
        block(0xC612_0000, 15, "benchmarking", "RFC 2544"),
        block(0xC633_6400, 24, "documentation (TEST-NET-2)", "RFC 5737"),
        block(0xCB00_7100, 24, "documentation (TEST-NET-3)", "RFC 5737"),
        block(0xE000_0000, 4, "multicast", "RFC 5771"),
        block(0xFFFF_FFFF, 32, "limited broadcast", "RFC 919, RFC 8190"),
        block(0xF000_0000, 4, "reserved for future use", "RFC 1112 §4"),
    ]

    public static let ipv6: [SpecialPurposeBlock] = [
        block(0, 0, 128, "unspecified", "RFC 4291"),
        block(0, 1, 128, "loopback", "RFC 4291"),
        block(0x0064_FF9B_0001_0000, 0, 48, "local-use IPv4/IPv6 translation", "RFC 8215"),
        block(0x0100_0000_0000_0000, 0, 64, "discard-only", "RFC 6666"),
        block(0x2001_0000_0000_0000, 0, 23, "IETF protocol assignments (Teredo, benchmarking, ORCHID, AMT, anycast)", "RFC 2928"),
        block(0x2001_0DB8_0000_0000, 0, 32, "documentation", "RFC 3849"),
        block(0x2002_0000_0000_0000, 0, 16, "6to4, embeds any IPv4 address", "RFC 3056"),
        block(0x3FFF_0000_0000_0000, 0, 20, "documentation", "RFC 9637"),
        block(0x5F00_0000_0000_0000, 0, 16, "segment routing SIDs", "RFC 9602"),
        block(0xFC00_0000_0000_0000, 0, 7, "unique local", "RFC 4193"),
        block(0xFE80_0000_0000_0000, 0, 10, "link-local", "RFC 4291"),
        block(0xFEC0_0000_0000_0000, 0, 10, "deprecated site-local", "RFC 3879"),
        block(0xFF00_0000_0000_0000, 0, 8, "multicast", "RFC 4291"),
    ]

    static let ipv4Mapped = block(0, 0xFFFF_0000_0000, 96, "IPv4-mapped", "RFC 4291")
    static let nat64 = block(0x0064_FF9B_0000_0000, 0, 96, "NAT64 well-known prefix", "RFC 6052")
    static let ipv4Compatible = block(0, 0, 96, "deprecated IPv4-compatible", "RFC 4291 §2.5.5.1")
    static let globalUnicast = block(0x2000_0000_0000_0000, 0, 3, "global unicast", "RFC 4291")

    /// What makes `address` unfit to fetch from, as a noun phrase ("loopback (127.0.0.0/8)"),
    /// or nil for a public address.
    public static func refusal(for address: IPAddress) -> String? {
        switch address {
        case .v4:
            return ipv4.first { address.isIn($0.network, length: $0.prefixLength) }.map { "\($0)" }
        case .v6(_, let low):
            if let block = ipv6.first(where: { address.isIn($0.network, length: $0.prefixLength) }) {
                return "\(block)"
            }
            let embedded = IPAddress.v4(UInt32(truncatingIfNeeded: low))
            for wrapper in [ipv4Mapped, nat64] where address.isIn(wrapper.network, length: wrapper.prefixLength) {
                return refusal(for: embedded).map { "the \(wrapper.name) form of \(embedded), \($0)" }
            }
            if address.isIn(ipv4Compatible.network, length: ipv4Compatible.prefixLength) {
                return "the \(ipv4Compatible.name) form of \(embedded) (::/96)" + (refusal(for: embedded).map { ", \($0)" } ?? "")
            }
            if !address.isIn(globalUnicast.network, length: globalUnicast.prefixLength) {
                return "outside global unicast (2000::/3): reserved by the IETF"
            }
            return nil
        }
    }

    private static func block(_ network: UInt32, _ length: Int, _ name: String, _ reference: String) -> SpecialPurposeBlock {
        SpecialPurposeBlock(network: .v4(network), prefixLength: length, name: name, reference: reference)
    }

    private static func block(_ high: UInt64, _ low: UInt64, _ length: Int, _ name: String, _ reference: String) -> SpecialPurposeBlock {
        SpecialPurposeBlock(network: .v6(high: high, low: low), prefixLength: length, name: name, reference: reference)
    }
}
