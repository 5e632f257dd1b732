// The embedding API: everything a Swift program needs to run a Synod node in-process or to talk
// to a cluster. `import Synod` brings in the node (`SynodNode`, `NodeConfiguration`), the client
// (`SynodClient`, `ClientConfiguration`), the KV vocabulary (`RangeRequest`, `Txn`, `KeyValue`,
// `LeaseID`, `WatchEvent`, ...) and addresses (`HostPort`).
//
// ```swift
// import Synod
//
// let node = try await SynodNode.start(NodeConfiguration(
//     id: NodeID(1), dataDirectory: "/tmp/synod-embedded",
//     peers: [(NodeID(1), HostPort(host: "127.0.0.1", port: 7101))],
//     clientAddress: HostPort(host: "127.0.0.1", port: 7001)))
// let client = SynodClient(ClientConfiguration(endpoints: [HostPort(host: "127.0.0.1", port: node.clientPort)]))
// try await client.put(Array("greeting".utf8), Array("hello".utf8))
// await client.close()
// await node.shutdown()
// ```
//
// A runnable version is `Examples/Embedded` (`swift run synod-embedded-example`).
@_exported import SynodClient
@_exported import SynodCore
@_exported import SynodNode
@_exported import SynodStateMachine
@_exported import SynodTransport
@_exported import SynodWire
