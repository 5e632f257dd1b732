import Foundation
import SynodClient
import SynodCore
import SynodStateMachine

/// What a `/v3/watch` request asks for (etcd's `create_request`).
struct GatewayWatchPlan: Sendable {
    var key: [UInt8]
    var rangeEnd: [UInt8]
    var startRevision: Int64
    var prevKV: Bool
    var progressNotify: Bool
}

// Watches: one `create_request` per HTTP request; the answer streams one JSON document per line,
// in etcd's WatchResponse shape, until the client goes away or the watch ends.
extension Gateway {
    func watchPlan(_ body: [UInt8]) throws(GatewayError) -> GatewayWatchPlan {
        let f = try JSONFields(body: body)
        try f.check(known: ["create_request"], unsupported: ["cancel_request", "progress_request"])
        guard let c = try f.fields("create_request") else { throw .invalid("a watch needs create_request") }
        try c.check(known: ["key", "range_end", "start_revision", "prev_kv", "progress_notify"], unsupported: ["filters", "fragment", "watch_id"])
        let key = try c.bytes("key")
        guard !key.isEmpty else { throw .invalid("key is not provided") }
        let start = try c.int64("start_revision")
        guard start >= 0 else { throw .invalid("start_revision must not be negative") }
        return GatewayWatchPlan(key: key, rangeEnd: try c.bytes("range_end"), startRevision: start,
                                prevKV: try c.bool("prev_kv"), progressNotify: try c.bool("progress_notify"))
    }

    /// Runs the watch, handing each message (one JSON line) to `emit` until `emit` answers
    /// false (the HTTP client went away or stopped reading) or the watch ends.
    func runWatch(_ plan: GatewayWatchPlan, emit: @Sendable ([UInt8]) -> Bool) async {
        func line(_ result: [String: Any]) -> [UInt8] { GatewayJSON.encode(["result": result]) + [0x0A] }
        guard emit(line(["header": header(0), "created": true])) else { return }
        let watch = client.openWatch(plan.key, rangeEnd: plan.rangeEnd, fromRevision: plan.startRevision,
                                     prevKV: plan.prevKV, progressNotify: plan.progressNotify)
        do {
            for try await update in watch {
                let message: [String: Any]
                switch update {
                case let .event(e): message = ["header": header(e.revision), "events": [GatewayJSON.event(e)]]
                case let .progress(revision): message = ["header": header(revision)]
                }
                guard emit(line(message)) else { return }
            }
            if !Task.isCancelled { _ = emit(line(["header": header(0), "canceled": true, "cancel_reason": "the watch ended"])) }
        } catch {
            _ = emit(line(["header": header(0), "canceled": true, "cancel_reason": Self.gatewayError(error).message]))
        }
    }
}
