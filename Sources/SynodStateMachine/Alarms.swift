import SynodCore

/// A cluster-wide alarm, raised and disarmed by committed commands (etcd's alarms), so every
/// replica refuses the same commands at the same log index.
public enum AlarmKind: UInt8, Hashable, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    /// The leader found the state tables over its space quota (`synod serve --quota-bytes`).
    /// While raised, commands that add data are refused with `KVError.noSpace`; reads, deletes,
    /// compaction, lease revocation and the mesh commands that change existing records still run.
    case noSpace = 1
    /// Replicas' histories differ at one revision (the leader's periodic `hashkv` check, etcd's
    /// corruption check). While raised, every command but an alarm command is refused with
    /// `KVError.corruptCluster`; reads still run, so an operator can look.
    case corrupt = 2

    public static func < (a: AlarmKind, b: AlarmKind) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .noSpace: return "NOSPACE"
        case .corrupt: return "CORRUPT"
        }
    }
}

/// The answer to an alarm command: the alarms raised after it, ascending.
public struct AlarmResult: Hashable, Sendable {
    public var revision: Int64
    public var alarms: [AlarmKind]
    public init(revision: Int64, alarms: [AlarmKind]) {
        self.revision = revision
        self.alarms = alarms
    }
}

/// The stored form of the raised alarms (`sm_meta` key `alarms`): one byte per alarm, ascending.
enum StoredAlarms {
    static func encode(_ alarms: [AlarmKind]) -> [UInt8] { alarms.sorted().map(\.rawValue) }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [AlarmKind] {
        guard bytes.count <= AlarmKind.allCases.count else { throw .lengthTooLarge(what: "alarms", length: bytes.count, limit: AlarmKind.allCases.count) }
        var out: [AlarmKind] = []
        for raw in bytes {
            guard let kind = AlarmKind(rawValue: raw) else { throw .unknownValue(what: "alarm", value: UInt64(raw)) }
            guard out.last.map({ $0 < kind }) ?? true else { throw .invalid("alarms not ascending") }
            out.append(kind)
        }
        return out
    }
}

extension Command {
    /// Whether this command may add data to the store: what a `noSpace` alarm refuses (as etcd
    /// refuses puts, transactions with puts and lease grants while NOSPACE is raised). Deletes,
    /// compaction and revocations free space; mesh commands other than a join or a new task
    /// change records that already exist (refusing heartbeats would turn a full store into
    /// failure verdicts).
    public var addsData: Bool {
        switch self {
        case .put, .putIgnoring, .leaseGrant: return true
        case let .txn(t):
            return (t.success + t.failure).contains { if case .put = $0 { return true } else { return false } }
        case let .mesh(command, _):
            switch command {
            case .join, .submit: return true
            default: return false
            }
        case .delete, .deleteRange, .leaseRevoke, .leaseExpire, .compact, .alarm, .clusterVersion, .auth: return false
        }
    }
}

extension ApplyContext {
    /// Raises or disarms `kind`. Changes no key and no revision; the alarm set is written with
    /// the batch's counters (`writeMeta`).
    func applyAlarm(_ kind: AlarmKind, raised: Bool) -> Response {
        var set = alarms.filter { $0 != kind }
        if raised { set.append(kind) }
        set.sort()
        if set != alarms {
            alarms = set
            alarmsChanged = true
        }
        return .alarm(AlarmResult(revision: revision, alarms: alarms))
    }

    /// The refusal for `command` under the raised alarms, if any.
    func alarmRefusal(_ command: Command) -> KVError? {
        guard !testingAlarmsIgnored else { return nil }
        if case .alarm = command { return nil }
        if case .clusterVersion = command { return nil }
        if alarms.contains(.corrupt) { return .corruptCluster }
        if alarms.contains(.noSpace), command.addsData { return .noSpace }
        return nil
    }
}
