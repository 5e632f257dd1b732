import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SynodCore
import SynodStateMachine
import SynodTransport
import SynodWire

/// How a client finds and talks to a cluster.
public struct ClientConfiguration: Sendable {
    /// Client addresses of some or all nodes. The client finds the leader from any of them.
    public var endpoints: [HostPort]
    /// Time to wait for one answer before trying again (a write is retried under its session,
    /// so it is never applied twice).
    public var requestTimeoutMillis: Int64 = 3_000
    /// Total time one call may spend retrying (leader changes, nodes down) before it fails.
    public var retryDeadlineMillis: Int64 = 15_000
    public var connectTimeoutMillis: Int64 = 500
    /// TLS to the nodes (`synod serve --cert-file ...`): the CA their certificates chain to, and
    /// this client's certificate and key if they require client certificates. Nil: plain TCP.
    public var tls: TLSFiles?
    /// The user and password every connection authenticates with (auth, `synod auth enable`);
    /// nil: connections stay anonymous, which an auth-enabled cluster refuses almost everything.
    public var credentials: Credentials?

    public init(endpoints: [HostPort]) {
        precondition(!endpoints.isEmpty, "a client needs at least one endpoint")
        self.endpoints = endpoints
    }
}

/// A user name and password (etcd's `--user name:password`).
public struct Credentials: Sendable, Hashable {
    public var user: String
    public var password: String
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// A Synod client: leader discovery, retries, exactly-once writes through client sessions.
///
/// Every write carries a session (client id, sequence number). A session has at most one write
/// outstanding, so the state machine's "last sequence per client" rule makes retries safe even
/// when many writes run concurrently: concurrent writes use different sessions from a pool.
public final class SynodClient: Sendable {
    public let configuration: ClientConfiguration
    let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let state = NIOLockedValueBox<(preferred: HostPort?, rotation: Int, connections: [HostPort: Connection])>((nil, 0, [:]))
    private let sessions: SessionPool
    /// The TLS context built from `configuration.tls` once (or why it could not be: thrown by
    /// the first connection).
    private let tls: Result<NIOSSLContext, any Error>?

    /// Creates a client. Pass `group` to share event loops between many clients (they are not
    /// shut down by `close`); otherwise the client makes its own with `threads` threads.
    public init(_ configuration: ClientConfiguration, threads: Int = 1, group: (any EventLoopGroup)? = nil) {
        self.configuration = configuration
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: threads)
        ownsGroup = group == nil
        tls = configuration.tls.map { files in Result { try files.clientContext() } }
        var seed = SystemRandomNumberGenerator()
        sessions = SessionPool(base: UInt64.random(in: 1...(UInt64.max >> 16), using: &seed) << 16)
    }

    /// The event loops this client runs on (to share with other clients: `init(_:threads:group:)`).
    public var eventLoopGroup: any EventLoopGroup { group }

    /// Closes every connection and the client's event loops.
    public func close() async {
        let conns = state.withLockedValue { s -> [Connection] in defer { s.connections = [:] }; return Array(s.connections.values) }
        for c in conns { c.close() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    // MARK: key-value API

    /// Puts `value` under `key`. Returns the revision and, with `prevKV`, the previous value.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: LeaseID? = nil, prevKV: Bool = false) async throws -> PutResult {
        guard case let .put(r) = try await write(.put(key: key, value: value, lease: lease, prevKV: prevKV)) else { throw unexpected() }
        return r
    }

    /// Writes an existing key again keeping its current value (`ignoreValue`; pass an empty
    /// `value`) and/or its current lease (`ignoreLease`; pass no `lease`) — etcd's put with
    /// `ignore_value` / `ignore_lease`, as `etcdctl put --ignore-value --lease ID` attaches a key
    /// to a lease without knowing its value. A missing key is `ClientError.kv(.invalidRequest)`.
    /// Needs cluster version 3.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8] = [], lease: LeaseID? = nil, prevKV: Bool = false, ignoreValue: Bool, ignoreLease: Bool = false) async throws -> PutResult {
        let command: Command = ignoreValue || ignoreLease
            ? .putIgnoring(key: key, value: value, lease: lease, prevKV: prevKV, ignoreValue: ignoreValue, ignoreLease: ignoreLease)
            : .put(key: key, value: value, lease: lease, prevKV: prevKV)
        guard case let .put(r) = try await write(command) else { throw unexpected() }
        return r
    }

    /// The key's current value, or nil. Linearizable by default.
    public func get(_ key: [UInt8], consistency: Consistency = .linearizable, revision: Int64? = nil) async throws -> KeyValue? {
        try await range(RangeRequest(key: key, revision: revision), consistency: consistency).kvs.first
    }

    /// Keys in a range, at `request.revision` if given. A refusal the state machine reports (a
    /// compacted or future revision, an invalid key) is thrown as `ClientError.kv`.
    public func range(_ request: RangeRequest, consistency: Consistency = .linearizable) async throws -> RangeResult {
        let response = try await send(.read(consistency, request.encode()))
        switch try decode(response) {
        case let .range(r): return r
        case let .failure(e): throw ClientError.kv(e)
        default: throw unexpected()
        }
    }

    @discardableResult
    public func delete(_ key: [UInt8], prevKV: Bool = false) async throws -> DeleteResult {
        guard case let .delete(r) = try await write(.delete(key: key, prevKV: prevKV)) else { throw unexpected() }
        return r
    }

    /// Deletes [from, to); an empty `to` means every key >= `from`.
    @discardableResult
    public func deleteRange(from: [UInt8], to: [UInt8], prevKV: Bool = false) async throws -> DeleteResult {
        guard case let .delete(r) = try await write(.deleteRange(from: from, to: to, prevKV: prevKV)) else { throw unexpected() }
        return r
    }

    public func txn(_ txn: Txn) async throws -> TxnResult {
        guard case let .txn(r) = try await write(.txn(txn)) else { throw unexpected() }
        return r
    }

    public func compact(revision: Int64) async throws -> CompactResult {
        guard case let .compact(r) = try await write(.compact(revision: revision)) else { throw unexpected() }
        return r
    }

    /// Proposes a command under a pooled session and returns the state machine's answer.
    /// A `Response.failure` is thrown as `ClientError.kv`.
    public func write(_ command: Command) async throws -> Response {
        let session = sessions.acquire()
        let envelope = CommandEnvelope(session: session, command: command)
        do {
            let response = try decode(try await send(.write(envelope.encode())))
            sessions.release(session)
            if case let .failure(e) = response { throw ClientError.kv(e) }
            return response
        } catch let e as ClientError {
            if case .kv = e {} else { sessions.discard(session) }
            throw e
        }
    }

    /// The status of the node at `endpoint` (no retries, no redirects).
    public func status(of endpoint: HostPort) async throws -> NodeStatus {
        try decodeStatus(try await withTimeout(try await connection(to: endpoint).request(.status), configuration.requestTimeoutMillis))
    }

    func decodeStatus(_ response: ClientResponse) throws -> NodeStatus {
        guard response.status == .ok else { throw ClientError.rejected(status: response.status, message: response.message) }
        do { return try NodeStatus.decode(response.body) } catch { throw ClientError.badResponse("\(error)") }
    }

    /// The status of the node at `endpoint` with its storage fields (`NodeStatus.storage`:
    /// state size, quota, alarms); from a node that does not know that request (an older build,
    /// or a BFT replica), the plain status, with `storage` nil.
    public func detailedStatus(of endpoint: HostPort) async throws -> NodeStatus {
        let conn = try await connection(to: endpoint)
        let response: ClientResponse
        do { response = try await withTimeout(conn.request(.statusDetail), configuration.requestTimeoutMillis) } catch {
            // Builds before the request closed the connection on it; a node that is down fails here too.
            return try await status(of: endpoint)
        }
        if response.status == .badRequest { return try await status(of: endpoint) }
        return try decodeStatus(response)
    }

    // MARK: plumbing

    func decode(_ r: ClientResponse) throws -> Response {
        do { return try Response.decode(r.body) } catch { throw ClientError.badResponse("\(error)") }
    }

    func unexpected() -> ClientError { .badResponse("response of an unexpected kind") }

    /// Sends a request to the leader (or any node for serializable reads), following redirects and
    /// retrying through elections and failures until `retryDeadlineMillis`.
    func send(_ body: ClientRequestBody) async throws -> ClientResponse {
        let deadline = NIODeadline.now() + .milliseconds(configuration.retryDeadlineMillis)
        var target = preferredEndpoint()
        var lastError = "no attempt"
        var sawNoLeader = false
        var backoffMillis: Int64 = 20
        while NIODeadline.now() < deadline {
            do {
                let conn = try await connection(to: target)
                let r = try await withTimeout(conn.request(body), configuration.requestTimeoutMillis)
                switch r.status {
                case .ok:
                    state.withLockedValue { $0.preferred = target }
                    return r
                case .notLeader:
                    if let hint = try? HostPort(parsing: r.leaderAddress), hint != target {
                        target = hint
                        continue
                    }
                    sawNoLeader = true
                    lastError = "no leader known"
                case .noLeader:
                    sawNoLeader = true
                    lastError = "no leader"
                case .busy, .shuttingDown, .unknownOutcome:
                    lastError = r.message
                case .badRequest, .internalError, .watchEvents, .watchEnded, .watchProgress, .snapshotChunk:
                    throw ClientError.rejected(status: r.status, message: r.message)
                case .permissionDenied:
                    throw ClientError.kv(.permissionDenied(r.message))
                case .authenticationFailed:
                    throw ClientError.authenticationFailed(r.message)
                }
            } catch let e as ClientError {
                if !e.isRetryable { throw e }
                drop(target)
                lastError = "\(e)"
            } catch {
                drop(target)
                lastError = describeConnectionFailure(error)
            }
            try await Task.sleep(nanoseconds: UInt64(backoffMillis) * 1_000_000)
            backoffMillis = min(backoffMillis * 2, 500)
            target = nextEndpoint(after: target)
        }
        if sawNoLeader { throw ClientError.noLeader }
        throw ClientError.unreachable(endpoints: configuration.endpoints.map(\.description).joined(separator: ","), lastError: lastError)
    }

    func preferredEndpoint() -> HostPort {
        state.withLockedValue { $0.preferred ?? configuration.endpoints[$0.rotation % configuration.endpoints.count] }
    }

    func nextEndpoint(after current: HostPort) -> HostPort {
        state.withLockedValue { s in
            s.preferred = nil
            s.rotation += 1
            let e = configuration.endpoints[s.rotation % configuration.endpoints.count]
            return e == current && configuration.endpoints.count > 1 ? configuration.endpoints[(s.rotation + 1) % configuration.endpoints.count] : e
        }
    }

    func connection(to endpoint: HostPort) async throws -> Connection {
        if let c = state.withLockedValue({ $0.connections[endpoint] }), c.isActive { return c }
        let c = try await Connection.connect(endpoint, group: group, timeoutMillis: configuration.connectTimeoutMillis, tls: try tls?.get())
        if let credentials = configuration.credentials {
            do { try await authenticate(c, credentials) } catch {
                c.close()
                throw error
            }
        }
        let existing = state.withLockedValue { s -> Connection? in
            if let old = s.connections[endpoint], old.isActive { return old }
            s.connections[endpoint] = c
            return nil
        }
        if let existing {
            c.close()
            return existing
        }
        return c
    }

    /// Authenticates a new connection (before anything else is sent on it). A wrong password
    /// is `ClientError.authenticationFailed`; anything else (no leader for the read index, a
    /// busy node) is thrown as retryable, so `send` tries again.
    func authenticate(_ c: Connection, _ credentials: Credentials) async throws {
        let r = try await withTimeout(c.request(.authenticate(user: credentials.user, password: Array(credentials.password.utf8))),
                                      configuration.requestTimeoutMillis)
        switch r.status {
        case .ok: return
        case .authenticationFailed: throw ClientError.authenticationFailed(r.message)
        case .badRequest: throw ClientError.rejected(status: r.status, message: "authenticate: \(r.message)")
        default: throw ClientError.unknownOutcome("authenticate: \(r.status) \(r.message)")
        }
    }

    func drop(_ endpoint: HostPort) {
        let c = state.withLockedValue { $0.connections.removeValue(forKey: endpoint) }
        c?.close()
    }

    func withTimeout(_ future: EventLoopFuture<ClientResponse>, _ millis: Int64) async throws -> ClientResponse {
        let promise = future.eventLoop.makePromise(of: ClientResponse.self)
        let done = NIOLockedValueBox(false)
        let task = future.eventLoop.scheduleTask(in: .milliseconds(millis)) {
            if done.withLockedValue({ d in defer { d = true }; return !d }) { promise.fail(ClientError.unknownOutcome("no answer within \(millis) ms")) }
        }
        future.whenComplete { result in
            task.cancel()
            if done.withLockedValue({ d in defer { d = true }; return !d }) { promise.completeWith(result) }
        }
        return try await promise.futureResult.get()
    }
}

/// Client sessions for exactly-once writes: each has at most one write outstanding.
final class SessionPool: Sendable {
    private let state: NIOLockedValueBox<(free: [ClientSession], next: UInt64)>
    init(base: UInt64) { state = NIOLockedValueBox(([], base)) }

    func acquire() -> ClientSession {
        state.withLockedValue { s in
            if let session = s.free.popLast() { return session }
            s.next += 1
            return ClientSession(clientID: s.next, sequence: 1)
        }
    }

    /// The write finished: the session's next write uses the next sequence number.
    func release(_ session: ClientSession) {
        state.withLockedValue { $0.free.append(ClientSession(clientID: session.clientID, sequence: session.sequence + 1)) }
    }

    /// The write's outcome is unknown: never reuse this session (a late apply would make the
    /// next sequence look stale).
    func discard(_ session: ClientSession) {}
}
