import Foundation

/// The bucket and key prefix of an `s3://BUCKET[/PREFIX]` storage spec.
public struct S3Location: Sendable, Equatable {
    public var bucket: String
    /// Without leading or trailing slashes; empty for none.
    public var prefix: String

    /// Bucket names follow S3's rules (3 to 63 characters: lower-case letters, digits, dots and
    /// hyphens, starting and ending with a letter or digit), so they are valid host-name labels
    /// for virtual-host-style URLs.
    public static func parse(_ spec: String) throws(StorageSpecError) -> S3Location {
        guard spec.hasPrefix("s3://") else { throw StorageSpecError(spec: spec, problem: "expected s3://BUCKET[/PREFIX]") }
        let rest = spec.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        guard (3...63).contains(bucket.count), bucket.allSatisfy(allowed.contains), let first = bucket.first, let last = bucket.last,
            first != "." && first != "-", last != "." && last != "-"
        else {
            throw StorageSpecError(
                spec: spec, problem: "the bucket name must be 3 to 63 lower-case letters, digits, dots or hyphens")
        }
        let prefix = rest.dropFirst(bucket.count).split(separator: "/").joined(separator: "/")
        return S3Location(bucket: bucket, prefix: prefix)
    }

    /// The object key of a task's output: `{prefix}/{taskID}/{unguessable}/result.{format}`.
    func key(taskID: String, unguessable: String, format: String) -> String {
        let name = "\(taskID)/\(unguessable)/result.\(format)"
        return prefix.isEmpty ? name : "\(prefix)/\(name)"
    }
}

/// How the worker reaches and uses an S3-compatible store.
public struct S3Settings: Sendable {
    /// `https://s3.{region}.amazonaws.com` for AWS; the provider's endpoint otherwise.
    public var endpoint: String
    public var region: String
    /// `{endpoint}/{bucket}/{key}` rather than `{bucket}.{endpoint host}/{key}`.
    public var pathStyle: Bool
    public var credentials: AWSCredentials
    /// Results are published as `{publicURL}/{key}` when set; as presigned GET URLs otherwise.
    public var publicURL: String?
    /// How long a presigned result URL stays valid; SigV4 allows 1 s to 7 days.
    public var presignExpiry: Int
    /// Files larger than this go up as multipart uploads.
    public var multipartThreshold: Int64
    /// Size of each part but the last of a multipart upload.
    public var partSize: Int64
    /// Parts of one upload sent at once.
    public var parallelParts: Int
    /// Tries of each request on 5xx, throttling and transport failures, and their backoff.
    public var retry: RetryPolicy
    /// Limit on one request, headers and body.
    public var requestTimeout: Duration

    public init(
        endpoint: String? = nil, region: String = "us-east-1", pathStyle: Bool = false, credentials: AWSCredentials,
        publicURL: String? = nil, presignExpiry: Int = 86_400, multipartThreshold: Int64 = 64 * 1024 * 1024,
        partSize: Int64 = 16 * 1024 * 1024, parallelParts: Int = 4, retry: RetryPolicy = RetryPolicy(maxAttempts: 4),
        requestTimeout: Duration = .seconds(300)
    ) {
        let endpoint = endpoint ?? "https://s3.\(region).amazonaws.com"
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.credentials = credentials
        self.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.presignExpiry = presignExpiry
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.parallelParts = parallelParts
        self.retry = retry
        self.requestTimeout = requestTimeout
    }

    /// The URL of `key` in `bucket` (the key's characters outside RFC 3986's unreserved set
    /// and `/` percent-encoded, as SigV4's canonical URI has them).
    func objectURL(bucket: String, key: String) -> (url: String, host: String, path: String) {
        let encodedKey = SigV4.encode(key, keepSlash: true)
        let (scheme, authority) = Self.split(endpoint)
        let basePath = authority.drop { $0 != "/" }
        let host = String(authority.prefix { $0 != "/" })
        if pathStyle {
            let path = "\(basePath)/\(bucket)/\(encodedKey)"
            return ("\(scheme)://\(host)\(path)", host, path)
        }
        let path = "\(basePath)/\(encodedKey)"
        return ("\(scheme)://\(bucket).\(host)\(path)", "\(bucket).\(host)", path)
    }

    private static func split(_ url: String) -> (scheme: String, rest: Substring) {
        guard let range = url.range(of: "://") else { return ("https", Substring(url)) }
        return (String(url[..<range.lowerBound]), url[range.upperBound...])
    }
}

/// An access key, and the session token of temporary credentials.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// Where the AWS CLI and SDKs look: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), else profile `AWS_PROFILE` (or `default`) of the shared credentials
    /// file `AWS_SHARED_CREDENTIALS_FILE` (or `~/.aws/credentials`).
    public static func load(environment: [String: String]) throws(CredentialsError) -> AWSCredentials {
        if let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty {
            guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw CredentialsError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials"
        let profile = environment["AWS_PROFILE"] ?? "default"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CredentialsError("no AWS_ACCESS_KEY_ID in the environment and no shared credentials file at \(path)")
        }
        return try fromSharedFile(text, profile: profile, path: path)
    }

    /// The keys of `[profile]` in the INI text of a shared credentials file.
    static func fromSharedFile(_ text: String, profile: String, path: String) throws(CredentialsError) -> AWSCredentials {
        var section: String?
        var values: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                continue
            }
            guard section == profile, let equals = line.firstIndex(of: "=") else { continue }
            values[line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()] =
                line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        guard let key = values["aws_access_key_id"], !key.isEmpty, let secret = values["aws_secret_access_key"], !secret.isEmpty else {
            throw CredentialsError("profile [\(profile)] of \(path) has no aws_access_key_id and aws_secret_access_key")
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"])
    }
}

public struct CredentialsError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
