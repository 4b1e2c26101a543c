#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where the PostgreSQL queue lives and how to log in: parsed from
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]` (`postgresql://` too).
///
/// The password comes from `--postgres-password-file` when given, else from the URL, else from
/// `PGPASSWORD`, as libpq does; none at all is fine for `trust` authentication.
public struct PostgresStoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// Whether the connections use TLS, with libpq's meaning of each `sslmode`.
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Never.
        case disable
        /// When the server offers it, without checking its certificate (libpq's default).
        case prefer
        /// Always, without checking the certificate.
        case require
        /// Always, and the certificate must be valid for the host.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String, tlsMode: TLSMode = .prefer) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tlsMode = tlsMode
    }

    /// Whether `store` names a PostgreSQL store (rather than `sqlite` or `memory`).
    public static func isPostgresURL(_ store: String) -> Bool {
        store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")
    }

    /// Parses `url`, taking the password as the type's documentation says.
    public init(url: String, passwordFile: String? = nil, environment: [String: String] = [:]) throws(PostgresLocationError) {
        guard let schemeEnd = url.range(of: "://"), Self.isPostgresURL(url) else {
            throw PostgresLocationError("'\(Self.redacted(url))' is not a postgres:// URL")
        }
        var rest = Substring(url[schemeEnd.upperBound...])
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        guard let at = rest.lastIndex(of: "@") else {
            throw PostgresLocationError("the URL must name a user: postgres://USER@HOST:PORT/DATABASE")
        }
        let userInfo = rest[..<at]
        let hostPort = rest[rest.index(after: at)...]
        let user: Substring
        var urlPassword: String?
        if let colon = userInfo.firstIndex(of: ":") {
            user = userInfo[..<colon]
            urlPassword = try Self.decode(userInfo[userInfo.index(after: colon)...], part: "password")
        } else {
            user = userInfo
        }
        username = try Self.decode(user, part: "user")
        guard !username.isEmpty else { throw PostgresLocationError("the URL must name a user: postgres://USER@HOST:PORT/DATABASE") }
        (host, port) = try Self.parseHostPort(hostPort)
        let name = try Self.decode(path, part: "database")
        database = name.isEmpty ? username : name
        tlsMode = .prefer
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let value = parts.count == 2 ? String(parts[1]) : ""
            guard parts[0] == "sslmode" else {
                throw PostgresLocationError("unknown URL parameter '\(parts[0])'; only sslmode is understood")
            }
            guard let mode = TLSMode(rawValue: value) else {
                let modes = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw PostgresLocationError("sslmode must be one of \(modes), got '\(value)'")
            }
            tlsMode = mode
        }
        if let passwordFile {
            password = try Self.readPassword(from: passwordFile)
        } else {
            password = urlPassword ?? environment["PGPASSWORD"]
        }
    }

    /// The URL without its password, for logs and error messages.
    public var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(username)@\(hostPart):\(port)/\(database)"
    }

    private static func parseHostPort(_ text: Substring) throws(PostgresLocationError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw PostgresLocationError("unclosed '[' in the host '\(text)'") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw PostgresLocationError("unexpected '\(after)' after the host")
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        guard !host.isEmpty else { throw PostgresLocationError("the URL must name a host: postgres://USER@HOST:PORT/DATABASE") }
        guard let portText else { return (String(host), 5432) }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw PostgresLocationError("the port must be a number from 1 to 65535, got '\(portText)'")
        }
        return (String(host), port)
    }

    private static func decode(_ text: Substring, part: String) throws(PostgresLocationError) -> String {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first != utf8.endIndex, utf8.index(after: first) != utf8.endIndex,
                    let value = UInt8(String(decoding: utf8[first...utf8.index(after: first)], as: UTF8.self), radix: 16)
                else { throw PostgresLocationError("the \(part) in the URL has a bad %-escape") }
                bytes.append(value)
                index = utf8.index(first, offsetBy: 2)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw PostgresLocationError("the \(part) in the URL is not UTF-8 once %-escapes are decoded")
        }
        return decoded
    }

    private static func readPassword(from path: String) throws(PostgresLocationError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PostgresLocationError("cannot read the password file \(path)")
        }
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }

    /// `url` with any password replaced, so it can appear in an error message.
    static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@"),
            let colon = url[schemeEnd.upperBound..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

/// A `--store postgres://…` URL or password setting that cannot be used.
public struct PostgresLocationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
