import Foundation

/// The URL table of docs/security.md (`Tests/url-policy-cases.json`), as every Swift test of
/// the URL policy reads it; the interop suite reads the same file.
public struct URLPolicyTable: Decodable, Sendable {
    /// A URL the default policy refuses for where it points.
    public struct Refused: Decodable, Sendable, CustomStringConvertible {
        public var url: String
        /// The address the host denotes, or "localhost".
        public var means: String
        /// Whether it denotes this machine (so a test may point it at a loopback server).
        public var local: Bool
        public var form: String
        public var description: String { "\(form): \(url)" }
    }

    /// A URL refused for its syntax, whatever the policy allows.
    public struct Malformed: Decodable, Sendable, CustomStringConvertible {
        public var url: String
        public var form: String
        public var description: String { "\(form): \(url)" }
    }

    /// A public URL and its canonical form.
    public struct Accepted: Decodable, Sendable, CustomStringConvertible {
        public var url: String
        public var canonical: String
        public var description: String { url }
    }

    public var refused: [Refused]
    public var malformed: [Malformed]
    public var accepted: [Accepted]

    public static let shared: URLPolicyTable = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/url-policy-cases.json")
        // A broken table must fail the run, not skip it.
        return try! JSONDecoder().decode(URLPolicyTable.self, from: Data(contentsOf: file))
    }()

    /// `template` with `{port}` (and `{long}`, a label that makes it too long) filled in.
    public static func url(_ template: String, port: Int = 80) -> String {
        template.replacingOccurrences(of: "{port}", with: String(port))
            .replacingOccurrences(of: "{long}", with: String(repeating: "a", count: 2100))
    }
}
