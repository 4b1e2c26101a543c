import Foundation

/// A throwaway certificate authority and certificates it signs, made with the `openssl` CLI in a
/// temp directory, for tests of TLS listeners and clients (nothing is committed, nothing
/// expires between runs). `remove()` deletes the directory.
public struct TestCertificates: Sendable {
    public struct Pair: Sendable {
        public var certificate: String
        public var privateKey: String
    }

    public let directory: String
    /// The CA's certificate (PEM): what a client trusts.
    public let authority: Pair

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swapline-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        authority = Pair(certificate: "\(directory)/ca.pem", privateKey: "\(directory)/ca.key")
        try Self.openssl(
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", authority.privateKey, "-out", authority.certificate, "-days", "30", "-subj", "/CN=Swapline test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    /// A server certificate signed by the CA for `subjectAlternativeNames`
    /// (`"IP:127.0.0.1,DNS:localhost"`).
    public func serverCertificate(named name: String, subjectAlternativeNames: String) throws -> Pair {
        let pair = Pair(certificate: "\(directory)/\(name).pem", privateKey: "\(directory)/\(name).key")
        let request = "\(directory)/\(name).csr"
        let extensions = "\(directory)/\(name).ext"
        try Self.openssl(
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", pair.privateKey,
             "-out", request, "-subj", "/CN=\(name)"])
        try "subjectAltName=\(subjectAlternativeNames)\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        try Self.openssl(
            ["x509", "-req", "-in", request, "-CA", authority.certificate, "-CAkey", authority.privateKey, "-CAcreateserial",
             "-out", pair.certificate, "-days", "30", "-extfile", extensions])
        return pair
    }

    /// A private key that belongs to no certificate here.
    public func strayPrivateKey(named name: String) throws -> String {
        let path = "\(directory)/\(name).key"
        try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path])
        return path
    }

    /// Writes `contents` to a file in the directory and returns its path.
    public func file(named name: String, contents: String) throws -> String {
        let path = "\(directory)/\(name)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw OpenSSLFailed(arguments: arguments, output: String(decoding: message, as: UTF8.self))
        }
    }
}

public struct OpenSSLFailed: Error, CustomStringConvertible {
    public var arguments: [String]
    public var output: String
    public var description: String { "openssl \(arguments.joined(separator: " ")) failed: \(output)" }
}
