import H2Transport
import SwaplineServer
import SwaplineTestKit
import Testing

/// Which URL in-process workers call, and where they connect, for each kind of certificate.
@Suite struct LocalEndpointTests {
    let certificates: TestCertificates

    init() throws { certificates = try TestCertificates() }

    private func credentials(_ subjectAlternativeNames: String) throws -> TLSCredentials {
        let pair = try certificates.serverCertificate(named: "server", subjectAlternativeNames: subjectAlternativeNames)
        return try TLSCredentials(certificateFile: pair.certificate, privateKeyFile: pair.privateKey)
    }

    @Test func cleartextIsTheListeningAddressWithWildcardsOnLoopback() throws {
        defer { certificates.remove() }
        #expect(try LocalEndpoint(host: "127.0.0.1", port: 5, tls: nil) == LocalEndpoint(url: "http://127.0.0.1:5"))
        #expect(try LocalEndpoint(host: "0.0.0.0", port: 5, tls: nil) == LocalEndpoint(url: "http://127.0.0.1:5"))
        #expect(try LocalEndpoint(host: "::1", port: 5, tls: nil) == LocalEndpoint(url: "http://[::1]:5"))
    }

    @Test func aCertificateForTheAddressIsCalledByAddress() throws {
        defer { certificates.remove() }
        let tls = try credentials("DNS:localhost,IP:127.0.0.1,IP:::1")
        let file = tls.certificateFile
        #expect(try LocalEndpoint(host: "127.0.0.1", port: 5, tls: tls) == LocalEndpoint(url: "https://127.0.0.1:5", caFile: file))
        #expect(try LocalEndpoint(host: "0.0.0.0", port: 5, tls: tls) == LocalEndpoint(url: "https://127.0.0.1:5", caFile: file))
        #expect(try LocalEndpoint(host: "::1", port: 5, tls: tls) == LocalEndpoint(url: "https://[::1]:5", caFile: file))
        #expect(try LocalEndpoint(host: "localhost", port: 5, tls: tls) == LocalEndpoint(url: "https://localhost:5", caFile: file))
    }

    @Test func otherwiseACertificateNameIsCalledAndTheAddressConnectedTo() throws {
        defer { certificates.remove() }
        let named = try credentials("DNS:swapline.example.com,DNS:localhost")
        #expect(
            try LocalEndpoint(host: "10.1.2.3", port: 5, tls: named)
                == LocalEndpoint(url: "https://localhost:5", caFile: named.certificateFile, connectTo: "10.1.2.3:5"))
    }

    @Test func aWildcardNameStandsForOneLabel() throws {
        defer { certificates.remove() }
        let wildcard = try credentials("DNS:*.example.com")
        #expect(
            try LocalEndpoint(host: "0.0.0.0", port: 5, tls: wildcard)
                == LocalEndpoint(url: "https://swapline.example.com:5", caFile: wildcard.certificateFile, connectTo: "127.0.0.1:5"))
    }

    @Test func anotherAddressOfTheCertificateIsCalledAndTheListenerConnectedTo() throws {
        defer { certificates.remove() }
        let addressed = try credentials("IP:10.1.2.3,IP:2001:db8::1")
        #expect(
            try LocalEndpoint(host: "0.0.0.0", port: 5, tls: addressed)
                == LocalEndpoint(url: "https://10.1.2.3:5", caFile: addressed.certificateFile, connectTo: "127.0.0.1:5"))
        let ipv6 = try credentials("IP:2001:db8::1")
        #expect(try LocalEndpoint(host: "127.0.0.1", port: 5, tls: ipv6).url == "https://[2001:db8::1]:5")
    }

    @Test func aCertificateWithNoUsableNameIsRefused() throws {
        defer { certificates.remove() }
        let nameless = try credentials("email:ops@example.com")
        #expect {
            try LocalEndpoint(host: "127.0.0.1", port: 5, tls: nameless)
        } throws: { "\($0)".contains("names neither 127.0.0.1 nor any DNS name or IP address") }
    }
}
