import Foundation
import SynodClient
import SynodCore
import SynodStateMachine

// Watches: one `create_request` per HTTP request; the answer streams one JSON document per line,
// in etcd's WatchResponse shape, until the client goes away or the watch ends.
extension Gateway {
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
                case let .event(e):
                    guard plan.passes(e) else { continue }
                    message = ["header": header(e.revision), "events": [GatewayJSON.event(e)]]
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
