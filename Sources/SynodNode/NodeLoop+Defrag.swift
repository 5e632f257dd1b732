import Foundation
import Logging
import SynodCore
import SynodLMDB
import SynodTransport
import SynodWire

extension NodeLoop {
    /// `synod defrag`: compacts this node's `data.mdb` while it runs (`StorageCompaction
    /// .compactRunning`), blocking this loop meanwhile, as etcd's defragment blocks its member —
    /// one member at a time keeps the cluster serving. Refused (`busy`) while a background read
    /// (a snapshot for a follower, a backup, a hash) runs: the environment can be swapped only
    /// once no transaction is open, and waiting for a long read would stall the loop for it.
    /// New background reads start only from this thread, so none can begin meanwhile.
    func defragment(_ id: UInt64, _ c: ClientConnection) {
        guard !snapshotBuilding, clientBackgroundReads.withLockedValue({ $0 }) == 0 else {
            return respond(c, ClientResponse(id: id, status: .busy, message: "a snapshot, backup or hash is being read on this node; retry"))
        }
        let t0 = ProcessInfo.processInfo.systemUptime
        do {
            try applyDeferred()
            try commitHeldApplies()
            let r = try StorageCompaction.compactRunning(store)
            // Same bytes, new map: read the counters back as a restart would.
            try sm.kv.reload()
            let seconds = ProcessInfo.processInfo.systemUptime - t0
            metrics.defragDuration.recordSeconds(seconds)
            let millis = Int64(seconds * 1000)
            logger.notice("storage defragmented", metadata: ["bytes_before": "\(r.bytesBefore)", "bytes_after": "\(r.bytesAfter)", "ms": "\(millis)"])
            respond(c, ClientResponse(id: id, status: .ok, body: DefragResult(bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, millis: millis).encode()))
        } catch {
            logger.error("defragmentation failed", metadata: ["error": "\(error)"])
            respond(c, ClientResponse(id: id, status: .internalError, message: "defrag: \(error)"))
        }
    }
}
