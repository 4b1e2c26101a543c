import Foundation
import SwaplineTestKit
import Testing
@testable import H2Transport

/// `--tls-cert`/`--tls-key` are read and checked at start: every way the files can be wrong is
/// refused with the file and the reason.
@Suite struct TLSCredentialsTests {
    let certificates: TestCertificates
    let server: TestCertificates.Pair

    init() throws {
        certificates = try TestCertificates()
        server = try certificates.serverCertificate(named: "server", subjectAlternativeNames: "IP:127.0.0.1,IP:::1,DNS:localhost,DNS:*.example.com")
    }

    private func load(_ certificate: String, _ key: String) -> Result<TLSCredentials, TLSCredentialsError> {
        Result { () throws(TLSCredentialsError) in try TLSCredentials(certificateFile: certificate, privateKeyFile: key) }
    }

    private func refusal(_ certificate: String, _ key: String) -> TLSCredentialsError? {
        if case .failure(let error) = load(certificate, key) { return error }
        return nil
    }

    @Test func aMatchingPairLoadsWithItsNames() throws {
        defer { certificates.remove() }
        let tls = try load(server.certificate, server.privateKey).get()
        #expect(tls.dnsNames == ["localhost", "*.example.com"])
        #expect(tls.ipAddresses == ["127.0.0.1", "::1"])
        #expect(tls.notValidBefore < Date() && Date() < tls.notValidAfter)
    }

    @Test func aChainAfterTheServersCertificateIsAccepted() throws {
        defer { certificates.remove() }
        let chain = try certificates.file(
            named: "chain.pem",
            contents: String(contentsOfFile: server.certificate, encoding: .utf8) + String(contentsOfFile: certificates.authority.certificate, encoding: .utf8))
        #expect(throws: Never.self) { try load(chain, server.privateKey).get() }
    }

    @Test func missingUnreadableAndEmptyFilesAreNamed() throws {
        defer { certificates.remove() }
        let missing = "\(certificates.directory)/missing.pem"
        #expect(refusal(missing, server.privateKey) == .unreadable(file: missing, reason: "no such file"))
        #expect(refusal(server.certificate, missing) == .unreadable(file: missing, reason: "no such file"))
        #expect(refusal(certificates.directory, server.privateKey) == .unreadable(file: certificates.directory, reason: "it is a directory"))
        let empty = try certificates.file(named: "empty.pem", contents: "")
        #expect(refusal(empty, server.privateKey) == .unreadable(file: empty, reason: "the file is empty, expected a PEM certificate"))
        #expect(refusal(server.certificate, empty) == .unreadable(file: empty, reason: "the file is empty, expected a PEM private key"))
        if getuid() != 0 {  // root reads anything
            let locked = try certificates.file(named: "locked.key", contents: "x")
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked)
            #expect(refusal(server.certificate, locked) == .unreadable(file: locked, reason: "permission denied"))
        }
    }

    @Test func swappedOrForeignContentsAreRefused() throws {
        defer { certificates.remove() }
        #expect(refusal(server.privateKey, server.privateKey) == .noCertificate(file: server.privateKey))
        #expect(refusal(server.certificate, server.certificate) == .noPrivateKey(file: server.certificate))
        let garbage = try certificates.file(named: "garbage.pem", contents: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        #expect(refusal(garbage, server.privateKey) == .noCertificate(file: garbage))
    }

    @Test func aKeyOfAnotherCertificateIsRefused() throws {
        defer { certificates.remove() }
        let stray = try certificates.strayPrivateKey(named: "stray")
        let error = try #require(refusal(server.certificate, stray))
        #expect(error == .keyDoesNotMatch(certificateFile: server.certificate, privateKeyFile: stray))
        #expect(error.description.contains("does not belong to the first certificate in \(server.certificate)"))
    }

    @Test func theChainInTheWrongOrderIsRefused() throws {
        defer { certificates.remove() }
        // The CA first: its certificate cannot be the server's own for the server's key.
        let reversed = try certificates.file(
            named: "reversed.pem",
            contents: String(contentsOfFile: certificates.authority.certificate, encoding: .utf8) + String(contentsOfFile: server.certificate, encoding: .utf8))
        let error = try #require(refusal(reversed, server.privateKey))
        #expect(error == .notAServerCertificate(file: reversed) || error == .keyDoesNotMatch(certificateFile: reversed, privateKeyFile: server.privateKey))
    }
}
