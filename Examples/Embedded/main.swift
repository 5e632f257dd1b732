// A runnable embedding example: starts a one-node Synod cluster inside this process, uses it as
// a coordination store (put, get, transaction, lock), and shuts it down.
import Foundation
import Synod

let directory = NSTemporaryDirectory() + "synod-embedded-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }

// Port 0: let the system pick free ports (a one-node cluster never dials a peer).
let configuration = NodeConfiguration(
    id: NodeID(1), dataDirectory: directory,
    peers: [(NodeID(1), HostPort(host: "127.0.0.1", port: 0))],
    clientAddress: HostPort(host: "127.0.0.1", port: 0))

let node = try await SynodNode.start(configuration)
let client = SynodClient(ClientConfiguration(endpoints: [HostPort(host: "127.0.0.1", port: node.clientPort)]))

try await client.put(Array("config/mode".utf8), Array("active".utf8))
let value = try await client.get(Array("config/mode".utf8)).map { String(decoding: $0.value, as: UTF8.self) }
print("config/mode = \(value ?? "missing")")

let swapped = try await client.txn(Txn(
    compares: [Compare(key: Array("config/mode".utf8), .equal, .value(Array("active".utf8)))],
    success: [.put(key: Array("config/mode".utf8), value: Array("draining".utf8), lease: nil, prevKV: false)]))
print("compare-and-swap succeeded: \(swapped.succeeded)")

let (lock, keepAlive) = try await client.lock("migrations", ttlMillis: 5_000)
print("holding lock \(lock.name) with fencing token \(lock.fencingToken)")
try await client.unlock(lock, keepAlive: keepAlive)

await client.close()
await node.shutdown()
print("embedded example: ok")
