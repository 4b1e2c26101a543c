// libFuzzer target: the REST shim's request decoding, from body bytes to an RPC request
// (JSONValue's parser, LegacyJSON's readers of the three JSON bodies, the 422 answer), and
// from the request target to a route (RESTRoute.match, FetchTask's query).
//
// Input: a request body, also read as a request target. A body that parses must survive a
// round trip (serialized and parsed again, the same value); each route's reader either builds
// its request, which must then encode as protobuf, or lists what is wrong, which is serialized
// as the 422 answer is. As a target, no `/outputs/` file name may leave its directory.
import FuzzDriver
import NIOCore
import SwaplineMessages
@testable import SwaplineServer

runFuzzer { bytes in
    checkBody(bytes)
    checkTarget(String(decoding: bytes, as: UTF8.self))
}

func checkBody(_ body: [UInt8]) {
    guard let json = try? JSONValue(parsing: body) else { return }
    let serialized = json.serialized()
    do {
        let again = try JSONValue(parsing: serialized)
        // Numbers out of Double's range parse as infinity, written as null: equal otherwise.
        if !containsInfinity(json) {
            precondition(again == json, "JSON changed in a round trip: \(String(decoding: serialized, as: UTF8.self))")
        }
    } catch {
        fatalError("serialized JSON does not parse: \(error) in \(String(decoding: serialized, as: UTF8.self))")
    }
    _ = json.serialized(indent: 2)
    check(LegacyJSON.createTaskRequest(json).mapError { RESTError.validation($0.details) })
    check(LegacyJSON.processSyncRequest(json).mapError { RESTError.validation($0.details) })
    check(LegacyJSON.updateStatusRequest(json).mapError { RESTError.validation($0.details) })
}

func check<Request: ProtoMessage>(_ decoded: Result<Request, RESTError>) {
    switch decoded {
    case .success(let request):
        _ = try! Request(protobufBytes: request.serializedBuffer())
    case .failure(let error):
        _ = try! JSONValue(parsing: JSONValue.object([("detail", error.detail)]).serialized())
    }
}

func containsInfinity(_ value: JSONValue) -> Bool {
    switch value {
    case .number(let number): return !number.isFinite
    case .array(let elements): return elements.contains(where: containsInfinity)
    case .object(let members): return members.contains { containsInfinity($0.1) }
    case .null, .bool, .integer, .string: return false
    }
}

func checkTarget(_ target: String) {
    let path = target.prefix { $0 != "?" }
    for method in ["GET", "POST"] {
        if case .success(.output(let names)) = RESTRoute.match(method: method, path: path) {
            precondition(names.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("/") }, "/outputs/ names \(names) leave the directory")
        }
    }
    check(RESTExchange.fetchRequest(query: target.dropFirst(path.count + 1)))
}
