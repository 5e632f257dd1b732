import Foundation
import NIOHTTP1
import SynodCore
import SynodStateMachine

/// A refusal the gateway answers in grpc-gateway's error shape
/// (`{"error": …, "code": <gRPC code>, "message": …}`) with the HTTP status etcd's gateway maps
/// that code to.
struct GatewayError: Error {
    var status: HTTPResponseStatus
    /// The gRPC status code etcd would answer with.
    var code: Int
    var message: String

    static func invalid(_ message: String) -> GatewayError { GatewayError(status: .badRequest, code: 3, message: message) }
    static func notFound(_ message: String) -> GatewayError { GatewayError(status: .notFound, code: 5, message: message) }
    static func unsupported(_ message: String) -> GatewayError { GatewayError(status: .notImplemented, code: 12, message: message) }
    static func unavailable(_ message: String) -> GatewayError { GatewayError(status: .serviceUnavailable, code: 14, message: message) }

    var body: [String: Any] { ["error": message, "code": code, "message": message] }
}

/// One decoded JSON request object, read the way etcd's gateway reads protobuf JSON: bytes are
/// base64, 64-bit integers may be numbers or decimal strings, a missing field is its zero value.
/// Every accessor refuses a wrongly typed field with `GatewayError.invalid`, never traps.
struct JSONFields {
    let object: [String: Any]

    init(_ object: [String: Any]) { self.object = object }

    /// Parses a request body; an empty body is `{}`.
    init(body: [UInt8]) throws(GatewayError) {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            object = [:]
            return
        }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(body), options: []) } catch {
            throw .invalid("the body is not JSON: \(error.localizedDescription)")
        }
        guard let object = parsed as? [String: Any] else { throw .invalid("the body must be a JSON object") }
        self.object = object
    }

    func bytes(_ name: String) throws(GatewayError) -> [UInt8] {
        guard let raw = object[name], !(raw is NSNull) else { return [] }
        guard let text = raw as? String, let data = Data(base64Encoded: text) else {
            throw .invalid("\(name) must be base64 (as etcd's JSON gateway takes bytes)")
        }
        return [UInt8](data)
    }

    func int64(_ name: String) throws(GatewayError) -> Int64 {
        guard let raw = object[name], !(raw is NSNull) else { return 0 }
        if let text = raw as? String {
            guard let v = Int64(text) else { throw .invalid("\(name) must be a 64-bit integer") }
            return v
        }
        if let n = raw as? NSNumber, !Self.isBool(n) {
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9.2e18 else { throw .invalid("\(name) must be a 64-bit integer") }
            return n.int64Value
        }
        throw .invalid("\(name) must be a 64-bit integer")
    }

    func bool(_ name: String) throws(GatewayError) -> Bool {
        guard let raw = object[name], !(raw is NSNull) else { return false }
        if let n = raw as? NSNumber, Self.isBool(n) { return n.boolValue }
        throw .invalid("\(name) must be true or false")
    }

    func string(_ name: String) throws(GatewayError) -> String? {
        guard let raw = object[name], !(raw is NSNull) else { return nil }
        guard let s = raw as? String else { throw .invalid("\(name) must be a string") }
        return s
    }

    func fields(_ name: String) throws(GatewayError) -> JSONFields? {
        guard let raw = object[name], !(raw is NSNull) else { return nil }
        guard let o = raw as? [String: Any] else { throw .invalid("\(name) must be an object") }
        return JSONFields(o)
    }

    func list(_ name: String) throws(GatewayError) -> [JSONFields] {
        guard let raw = object[name], !(raw is NSNull) else { return [] }
        guard let items = raw as? [Any] else { throw .invalid("\(name) must be an array") }
        var out: [JSONFields] = []
        for item in items {
            guard let o = item as? [String: Any] else { throw .invalid("\(name) must hold objects") }
            out.append(JSONFields(o))
        }
        return out
    }

    /// Refuses fields outside `known`, and fields in `unsupported` set to anything but their
    /// zero value (etcd options Synod does not have, such as sorting): a client must not believe
    /// an option took effect.
    func check(known: Set<String>, unsupported: Set<String> = []) throws(GatewayError) {
        for (name, value) in object.sorted(by: { $0.key < $1.key }) {
            if unsupported.contains(name) {
                guard Self.isZero(value) else { throw .unsupported("\(name) is not supported by Synod's gateway") }
            } else if !known.contains(name) {
                throw .invalid("unknown field \(name)")
            }
        }
    }

    /// JSON `true`/`false` arrive as boolean NSNumbers (Objective-C type `c`); numbers never do.
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func isZero(_ value: Any) -> Bool {
        if value is NSNull { return true }
        if let s = value as? String { return s.isEmpty || s == "0" || s == "NONE" || s == "KEY" || s == "ASCEND" }
        if let n = value as? NSNumber { return isBool(n) ? !n.boolValue : n.doubleValue == 0 }
        if let a = value as? [Any] { return a.isEmpty }
        return false
    }
}

/// Builds responses in etcd's JSON: 64-bit integers as decimal strings, bytes as base64, and
/// zero-valued fields left out, as protobuf's JSON mapping does.
enum GatewayJSON {
    static func int(_ v: Int64) -> String { String(v) }
    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func kv(_ kv: KeyValue) -> [String: Any] {
        var o: [String: Any] = ["key": b64(kv.key)]
        if kv.createRevision != 0 { o["create_revision"] = int(kv.createRevision) }
        if kv.modRevision != 0 { o["mod_revision"] = int(kv.modRevision) }
        if kv.version != 0 { o["version"] = int(kv.version) }
        if !kv.value.isEmpty { o["value"] = b64(kv.value) }
        if let lease = kv.lease, lease.rawValue != 0 { o["lease"] = int(Int64(bitPattern: lease.rawValue)) }
        return o
    }

    static func event(_ e: WatchEvent) -> [String: Any] {
        var o: [String: Any] = ["kv": kv(e.kv)]
        if e.type == .delete { o["type"] = "DELETE" }
        if let p = e.prevKV { o["prev_kv"] = kv(p) }
        return o
    }

    /// One JSON document: keys sorted by their bytes, so the same answer is the same bytes.
    /// Written here rather than with `JSONSerialization`, which on Linux bridged every
    /// dictionary to `NSDictionary` and sorted its keys with ICU collation: half of a node's CPU
    /// at 7k gateway reads a second (perf). Values are what the gateway builds: strings,
    /// booleans, integers, arrays and string-keyed objects of them.
    static func encode(_ object: [String: Any]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(object, into: &out)
        return out
    }

    static func write(_ value: Any, into out: inout [UInt8]) {
        switch value {
        case let s as String: writeString(s, into: &out)
        case let b as Bool: out += b ? Array("true".utf8) : Array("false".utf8)
        case let i as Int: out += Array(String(i).utf8)
        case let i as Int64: out += Array(String(i).utf8)
        case let o as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (n, key) in o.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(o[key]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (n, item) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        default: out += Array("null".utf8)
        }
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
