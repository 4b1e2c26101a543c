import SwaplineTestKit
import Testing

@testable import SwaplineCore

@Suite struct URLPolicyTableTests {
    let policy = URLPolicy()

    @Test(arguments: URLPolicyTable.shared.refused)
    func refusesEveryInternalSpelling(_ entry: URLPolicyTable.Refused) throws {
        let url = URLPolicyTable.url(entry.url)
        let violation = try #require(policy.check(url).failure)
        #expect([.internalAddress, .localName].contains(violation.kind), "\(violation)")
        // It is refused for what the host means, which every spelling must parse to.
        let parsed = try CheckedURL.parse(url).get()
        if entry.means == "localhost" {
            #expect(violation.kind == .localName)
        } else {
            let expected = try #require(IPAddress(numeric: entry.means))
            guard case .address(let address) = parsed.host else { throw PolicyTestFailure(message: "\(url) parsed as a name") }
            #expect(address.unmapped == expected.unmapped)
            #expect(violation.reason.contains("private or special-purpose address"))
        }
    }

    @Test(arguments: URLPolicyTable.shared.malformed)
    func refusesEveryMalformedURL(_ entry: URLPolicyTable.Malformed) throws {
        let violation = try #require(policy.check(URLPolicyTable.url(entry.url)).failure)
        #expect(![.internalAddress, .localName, .deniedHost].contains(violation.kind), "\(violation)")
        // Loosening the address rules does not loosen the syntax.
        #expect(URLPolicy(allowsPrivateAddresses: true).check(URLPolicyTable.url(entry.url)).failure != nil)
    }

    @Test(arguments: URLPolicyTable.shared.accepted)
    func acceptsPublicURLsInTheirCanonicalForm(_ entry: URLPolicyTable.Accepted) throws {
        let checked = try policy.check(entry.url).get()
        #expect(checked.url == entry.canonical)
        // The canonical form means the same and is accepted again.
        #expect(try policy.check(checked.url).get() == checked)
    }

    @Test(arguments: URLPolicyTable.shared.refused.filter(\.local))
    func allowPrivateURLsLetsLocalURLsThrough(_ entry: URLPolicyTable.Refused) throws {
        let relaxed = URLPolicy(allowsPrivateAddresses: true)
        #expect(relaxed.check(URLPolicyTable.url(entry.url, port: 8000)).failure == nil)
    }
}

@Suite struct URLPolicyTests {
    @Test func theLengthLimitIsInclusive() {
        let base = "https://example.com/"
        let exact = base + String(repeating: "a", count: URLPolicy.maxURLLength - base.utf8.count)
        #expect(URLPolicy().check(exact).failure == nil)
        #expect(URLPolicy().check(exact + "a").failure?.kind == .tooLong)
    }

    @Test func messagesSayWhatIsWrong() {
        let policy = URLPolicy()
        #expect(policy.check("http://2130706433/").failure?.reason
            == "must not point to a private or special-purpose address: 127.0.0.1 is loopback (127.0.0.0/8)")
        #expect(policy.check("http://[::ffff:169.254.169.254]/").failure?.reason.contains(
            "the IPv4-mapped form of 169.254.169.254, link-local") == true)
        #expect(policy.check("http://localhost/").failure?.reason == "must not point to localhost")
        #expect(policy.check("http://u:p@example.com/").failure?.kind == .userinfo)
        #expect(policy.check("ftp://example.com/").failure?.kind == .scheme)
    }

    @Test func connectTimeChecksEveryResolvedAddress() throws {
        let policy = URLPolicy()
        let url = try policy.check("https://images.example.com/a.jpg").get()
        #expect(policy.check(.v4(0x5DB8_D822), resolvedFor: url) == nil)  // 93.184.216.34
        #expect(policy.check(IPAddress(numeric: "127.0.0.1")!, resolvedFor: url)?.kind == .internalAddress)
        #expect(policy.check(IPAddress(numeric: "::ffff:10.1.2.3")!, resolvedFor: url)?.kind == .internalAddress)
        #expect(policy.check(IPAddress(numeric: "fd00::1")!, resolvedFor: url)?.kind == .internalAddress)
        #expect(policy.check(IPAddress(numeric: "169.254.169.254")!, resolvedFor: url)?.reason
            == "resolves to 169.254.169.254, link-local, incl. the cloud metadata service 169.254.169.254 (169.254.0.0/16)")
    }

    @Test func allowListEntriesLetExactlyTheirHostsThrough() throws {
        let policy = URLPolicy(allowedHosts: [try HostPattern("127.0.0.1:8000"), try HostPattern("files.internal"), try HostPattern("10.9.0.0/16")])
        #expect(policy.check("http://127.0.0.1:8000/a").failure == nil)
        #expect(policy.check("http://0x7f.1:8000/a").failure == nil)  // any spelling of the address
        #expect(policy.check("http://[::ffff:127.0.0.1]:8000/a").failure == nil)
        #expect(policy.check("http://127.0.0.1:8001/a").failure?.kind == .internalAddress)  // another port
        #expect(policy.check("http://127.0.0.2:8000/a").failure?.kind == .internalAddress)
        #expect(policy.check("http://169.254.169.254/").failure?.kind == .internalAddress)
        let internalName = try policy.check("http://files.internal/a").get()
        #expect(policy.check(IPAddress(numeric: "10.0.0.1")!, resolvedFor: internalName) == nil)  // the name is trusted
        let other = try policy.check("http://other.example/a").get()
        #expect(policy.check(IPAddress(numeric: "10.9.3.4")!, resolvedFor: other) == nil)  // an allowed network
        #expect(policy.check(IPAddress(numeric: "10.8.3.4")!, resolvedFor: other)?.kind == .internalAddress)
    }

    @Test func denyListWinsOverEverything() throws {
        let policy = URLPolicy(
            allowsPrivateAddresses: true, allowedHosts: [try HostPattern("*.example.com")],
            deniedHosts: [try HostPattern("*.example.com"), try HostPattern("169.254.0.0/16"), try HostPattern("evil.test")])
        #expect(policy.check("https://a.example.com/").failure?.kind == .deniedHost)
        #expect(policy.check("https://example.com/").failure == nil)  // *. matches names under it only
        #expect(policy.check("http://2852039166/").failure?.kind == .deniedHost)  // 169.254.169.254
        #expect(policy.check("http://EVIL.test./").failure?.kind == .deniedHost)
        #expect(policy.check("http://127.0.0.1/").failure == nil)
        let name = try policy.check("https://innocent.test/").get()
        #expect(policy.check(IPAddress(numeric: "169.254.169.254")!, resolvedFor: name)?.kind == .deniedHost)
        #expect(policy.check(IPAddress(numeric: "10.0.0.1")!, resolvedFor: name) == nil)
    }

    @Test(arguments: [
        ("example.com", true), ("*.example.com", true), ("EXAMPLE.com.", true), ("127.0.0.1:8000", true), ("[::1]:8000", true),
        ("::1", true), ("10.0.0.0/8", true), ("fd00::/8", true), ("0x7f.1", true),
        ("", false), ("*.", false), ("exa mple.com", false), ("10.0.0.0/33", false), ("fd00::/129", false), ("127.0.0.1:0", false),
        ("[::1", false), ("a@b", false), ("10.0.0.0/x", false), ("1.2.3.4.5", false),
    ])
    func hostPatternsParse(text: String, valid: Bool) {
        #expect(((try? HostPattern(text)) != nil) == valid, Comment(rawValue: text))
    }

    @Test func canonicalFormsRoundTrip() throws {
        #expect(IPAddress(numeric: "2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress(numeric: "0:0:0:0:0:0:0:0")?.description == "::")
        #expect(IPAddress(numeric: "fe80:0:0:0:0:0:0:1")?.description == "fe80::1")
        #expect(IPAddress(numeric: "1:0:0:2:0:0:0:3")?.description == "1:0:0:2::3")
        #expect(IPAddress(numeric: "1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
        #expect(IPAddress(numeric: "1:0:2:3:4:5:6:7")?.description == "1:0:2:3:4:5:6:7")  // one zero group stays
        #expect(IPAddress(numeric: "::ffff:1.2.3.4")?.description == "::ffff:1.2.3.4")
        #expect(IPAddress(numeric: "01.2.3.4") == nil)
        #expect(IPAddress(numeric: "1.2.3") == nil)
    }

    @Test func redirectsResolveAgainstTheCheckedURL() throws {
        let base = try CheckedURL.parse("https://cdn.example.com:8443/a/b/c.jpg?x=1").get()
        #expect(base.resolving("http://other.example/x") == "http://other.example/x")
        #expect(base.resolving("//other.example/x") == "https://other.example/x")
        #expect(base.resolving("/x?y") == "https://cdn.example.com:8443/x?y")
        #expect(base.resolving("d.jpg") == "https://cdn.example.com:8443/a/b/d.jpg")
        #expect(base.resolving("?z=2") == "https://cdn.example.com:8443/a/b/c.jpg?z=2")
        #expect(base.resolving("") == base.url)
        // Whatever the spelling, the next hop is parsed and judged again.
        #expect(URLPolicy().check(base.resolving("http://0x7f.1/")).failure?.kind == .internalAddress)
        #expect(URLPolicy().check(base.resolving("gopher://x/")).failure?.kind == .scheme)
    }
}

struct PolicyTestFailure: Error {
    var message: String
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
