import Foundation
import NIOCore
import NIOSSL

/// The certificate chain and private key a TLS listener presents (`--tls-cert`, `--tls-key`),
/// read and checked once at start, and the TLS context every handshake on the port uses.
///
/// Both files are PEM. The certificate file holds the server's own certificate first, then
/// any intermediates of its chain. The context offers TLS 1.2 and later and ALPN `h2` before
/// `http/1.1` (the server's preference wins), so gRPC clients get HTTP/2 and HTTP/1.1-only
/// clients still reach the REST routes. Client certificates are not asked for.
///
/// The files are read here and never again: a renewed certificate takes effect at the next
/// start.
public struct TLSCredentials: Sendable {
    public let certificateFile: String
    public let privateKeyFile: String
    /// The DNS names of the server's certificate (its subject alternative names), as written,
    /// wildcards included.
    public let dnsNames: [String]
    /// The IP addresses of the server's certificate, in their usual text form.
    public let ipAddresses: [String]
    /// When the server's certificate stops being valid.
    public let notValidAfter: Date
    /// When the server's certificate starts being valid.
    public let notValidBefore: Date
    let context: NIOSSLContext

    /// The ALPN protocols offered, most preferred first.
    static let applicationProtocols = ["h2", "http/1.1"]

    /// Reads and checks both files; throws naming the file and what is wrong with it.
    public init(certificateFile: String, privateKeyFile: String) throws(TLSCredentialsError) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(Self.read(certificateFile, what: "certificate"))
        } catch let error as TLSCredentialsError {
            throw error
        } catch {
            throw .noCertificate(file: certificateFile)
        }
        guard let leaf = chain.first else { throw .noCertificate(file: certificateFile) }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Self.read(privateKeyFile, what: "private key"), format: .pem)
        } catch let error as TLSCredentialsError {
            throw error
        } catch {
            throw .noPrivateKey(file: privateKeyFile)
        }

        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = Self.applicationProtocols
        // After sending close_notify the server has nothing left to read, and clients (grpcio)
        // often never answer with theirs: wait briefly, not swift-nio-ssl's 5 s, so a closed
        // connection does not hold a graceful shutdown back.
        configuration.shutdownTimeout = .milliseconds(500)
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // The key parsed, so the TLS library refused it for the certificate it follows.
            throw .keyDoesNotMatch(certificateFile: certificateFile, privateKeyFile: privateKeyFile)
        } catch NIOSSLError.failedToLoadCertificate {
            throw .notAServerCertificate(file: certificateFile)
        } catch {
            throw .rejected(file: certificateFile, reason: "\(error)")
        }

        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        var dnsNames: [String] = []
        var ipAddresses: [String] = []
        for name in leaf._subjectAlternativeNames() {
            switch name.nameType {
            case .dnsName:
                dnsNames.append(String(decoding: Array(name.contents), as: UTF8.self))
            case .ipAddress:
                var packed = ByteBuffer()
                packed.writeBytes(Array(name.contents))
                if let address = try? SocketAddress(packedIPAddress: packed, port: 0).ipAddress {
                    ipAddresses.append(address)
                }
            default:
                continue
            }
        }
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        notValidAfter = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        notValidBefore = Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore))
    }

    private static func read(_ path: String, what: String) throws(TLSCredentialsError) -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(file: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw .unreadable(file: path, reason: "it is a directory") }
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(file: path, reason: "permission denied")
        }
        guard !data.isEmpty else { throw .unreadable(file: path, reason: "the file is empty, expected a PEM \(what)") }
        return Array(data)
    }
}

/// Why `--tls-cert`/`--tls-key` cannot be used; the description names the file.
public enum TLSCredentialsError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case noCertificate(file: String)
    case noPrivateKey(file: String)
    case keyDoesNotMatch(certificateFile: String, privateKeyFile: String)
    case notAServerCertificate(file: String)
    case rejected(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            "cannot read \(file): \(reason)"
        case .noCertificate(let file):
            "\(file) holds no PEM certificate (expected -----BEGIN CERTIFICATE-----, the server's own certificate first)"
        case .noPrivateKey(let file):
            "\(file) holds no unencrypted PEM private key (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)"
        case .keyDoesNotMatch(let certificateFile, let privateKeyFile):
            "the private key in \(privateKeyFile) does not belong to the first certificate in \(certificateFile) (the server's own certificate must come first, then its chain)"
        case .notAServerCertificate(let file):
            "the TLS library refused the first certificate in \(file) as the server's own (is a CA certificate first, or does its key usage not allow signing?)"
        case .rejected(let file, let reason):
            "the TLS library refused the certificate chain in \(file): \(reason)"
        }
    }
}
