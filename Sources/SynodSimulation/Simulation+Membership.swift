import SynodCore
import SynodRaft

// Membership changes and leadership transfers, asked of the leader during the safety phase.
extension Simulation {
    /// Most voters the simulator lets a cluster grow to, and fewest it lets it shrink to.
    static let votersMax = 7
    static let votersMin = 3

    func maybeChangeMembership() {
        let wantsChange = random.chance(faults.membershipChangePerMille, in: 1000)
        let wantsTransfer = random.chance(faults.transferPerMille, in: 1000)
        guard wantsChange || wantsTransfer, let k = currentLeader, var core = nodes[k].core else { return }
        let m = core.membership
        if wantsTransfer {
            let others = m.voters.filter { $0 != core.id }
            guard !others.isEmpty else { return }
            let target = others[random.int(in: 0...(others.count - 1))]
            if (try? core.transferLeadership(to: target)) != nil {
                transfers += 1
                record("\(core.id) transfer leadership to \(target)")
            }
            nodes[k].core = core
            return
        }
        guard let change = randomChange(m) else { return }
        do {
            let at = try core.proposeMembershipChange(change)
            membershipChanges += 1
            record("\(core.id) propose \(change) at \(at)")
        } catch {
            record("\(core.id) refused \(change): \(error)")
        }
        nodes[k].core = core
    }

    func randomChange(_ m: Membership) -> MembershipChange? {
        let outsiders = nodes.map(\.id).filter { !m.voters.contains($0) && !m.learners.contains($0) && !m.outgoingVoters.contains($0) }
        func pick(_ ids: [NodeID]) -> NodeID? { ids.isEmpty ? nil : ids[random.int(in: 0...(ids.count - 1))] }
        switch random.int(in: 0...5) {
        case 0: return pick(outsiders).map { .addLearner($0) }
        case 1:
            guard m.voters.count < Simulation.votersMax else { return nil }
            return pick(m.learners).map { .promoteLearner($0) }
        case 2:
            guard m.voters.count > Simulation.votersMin else { return nil }
            return pick(m.voters).map { .removeVoter($0) }
        case 3:
            guard m.voters.count < Simulation.votersMax else { return nil }
            return pick(outsiders).map { .addVoter($0) }
        case 4:
            guard let old = pick(m.voters), let new = pick(outsiders + m.learners) else { return nil }
            return .replaceVoter(old: old, new: new)
        default:
            return pick(m.learners).map { .removeLearner($0) }
        }
    }
}
