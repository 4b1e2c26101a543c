import ArgumentParser
import Foundation
import SwaplineServer

/// Where `serve` finds its bearer tokens: `SWAPLINE_AUTH_TOKENS` and `--auth-tokens-file`.
enum AccessTokenOptions {
    static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AccessTokens {
        var tokens = AccessTokens()
        if let value = environment["SWAPLINE_AUTH_TOKENS"] { try tokens.add(environmentValue: value) }
        if let file {
            let contents: String
            do {
                contents = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read --auth-tokens-file \(file): \(error.localizedDescription)")
            }
            try tokens.add(fileContents: contents, path: file)
        }
        return tokens
    }

    /// 256 bits from the system's CSPRNG, in hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let digits = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }.joined()
    }
}

/// The bearer token of the client commands and the worker: `--token`, else `SWAPLINE_TOKEN`.
func bearerToken(option: String?) -> String? {
    option ?? ProcessInfo.processInfo.environment["SWAPLINE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
}
