// libFuzzer target: the REST shim's request decoding, from body bytes to an RPC request
// (JSONValue's parser, LegacyJSON's readers of the three JSON bodies, the 422 answer).
//
// Input: a request body. A body that parses must survive a round trip (serialized and parsed
// again, the same value); each route's reader either builds its request, which must then
// encode as protobuf, or lists what is wrong, which is serialized as the 422 answer is.
import FuzzDriver
import NIOCore
import SwaplineMessages
@testable import SwaplineServer

runFuzzer(checkBody)

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
    check(LegacyJSON.createTaskRequest(json))
    check(LegacyJSON.processSyncRequest(json))
    check(LegacyJSON.updateStatusRequest(json))
}

func check<Request: ProtoMessage>(_ decoded: Result<Request, BodyErrors>) {
    switch decoded {
    case .success(let request):
        _ = try! Request(protobufBytes: request.serializedBuffer())
    case .failure(let errors):
        let answer = JSONValue.object([("detail", RESTError.validation(errors.details).detail)])
        _ = try! JSONValue(parsing: answer.serialized())
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
