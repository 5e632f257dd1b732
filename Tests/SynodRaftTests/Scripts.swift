// Scripts and their expected output for ScriptTests (kept as literals: no test resources needed).
// Message positions print as term/index, e.g. `prev=2/3` is the entry at index 3 of term 2.
extension ScriptTests {
    static let scripts: [String: (String, String)] = [
        "figure8": (figure8, figure8Expected),
        "prevote": (prevote, prevoteExpected),
        "backtracking": (backtracking, backtrackingExpected),
    ]

    /// Raft §5.4.2, Figure 8: node 1's term-1 entry reaches a majority while node 1 leads term 3,
    /// but it is not committed until an entry of term 3 is.
    static let figure8 = """
    campaign 1
    stabilize
    isolate 1
    propose 1 old        # only node 1 has it
    stabilize
    campaign 2           # node 2 leads term 2 without it (node 1 is cut off)
    stabilize
    restart 1            # node 1 crashes and returns as a follower of term 1
    heal
    cut 1 2
    cut 2 1
    cut 2 3
    cut 3 2
    campaign 1           # term 2: node 3 already voted for node 2
    stabilize
    campaign 1           # term 3: wins with node 3's vote and replicates the old entry
    stabilize
    status               # old entry on 1 and 3, but commit stays at 0
    propose 1 new        # a term-3 entry commits both
    stabilize
    status
    """

    static let figure8Expected = """
    > campaign 1
    > stabilize
      vote n1->n2 t1 last=0/0
      vote n1->n3 t1 last=0/0
      voteResponse n2->n1 t1 grant
      voteResponse n3->n1 t1 grant
      append n1->n2 t1 prev=0/0 n=0 commit=0
      append n1->n3 t1 prev=0/0 n=0 commit=0
      appendResponse n2->n1 t1 ok 0
      appendResponse n3->n1 t1 ok 0
    > isolate 1
    > propose 1 old
    > stabilize
    > campaign 2
    > stabilize
      vote n2->n3 t2 last=0/0
      voteResponse n3->n2 t2 grant
      append n2->n3 t2 prev=0/0 n=0 commit=0
      appendResponse n3->n2 t2 ok 0
    > restart 1
    > heal
    > cut 1 2
    > cut 2 1
    > cut 2 3
    > cut 3 2
    > campaign 1
    > stabilize
      vote n1->n3 t2 last=1/1
      voteResponse n3->n1 t2 reject
    > campaign 1
    > stabilize
      vote n1->n3 t3 last=1/1
      voteResponse n3->n1 t3 grant
      append n1->n3 t3 prev=1/1 n=0 commit=0
      appendResponse n3->n1 t3 reject 1 hint=1 ct=0
      append n1->n3 t3 prev=0/0 n=1 commit=0
      appendResponse n3->n1 t3 ok 1
    > status
    n1 leader t3 last=1 commit=0
    n2 leader t2 last=0 commit=0
    n3 follower t3 last=1 commit=0
    > propose 1 new
    > stabilize
      append n1->n3 t3 prev=1/1 n=1 commit=0
      appendResponse n3->n1 t3 ok 2
      append n1->n3 t3 prev=3/2 n=0 commit=2
      appendResponse n3->n1 t3 ok 2
    > status
    n1 leader t3 last=2 commit=2
    n2 leader t2 last=0 commit=0
    n3 follower t3 last=2 commit=2
    """

    /// Dissertation §9.6: a partitioned node's pre-votes fail without raising its term, so it
    /// does not depose the leader when it returns.
    static let prevote = """
    campaign 1
    stabilize
    isolate 3
    tick 3 40            # many election timeouts, all pre-votes lost
    stabilize
    status               # node 3 is still in term 1
    heal
    tick 3 2             # its next pre-vote reaches nodes that hear from the leader: ignored
    stabilize
    tick 1 2             # the leader's heartbeat brings it back
    stabilize
    status
    """

    static let prevoteExpected = """
    > campaign 1
    > stabilize
      preVote n1->n2 t1 last=0/0
      preVote n1->n3 t1 last=0/0
      preVoteResponse n2->n1 t1 grant
      preVoteResponse n3->n1 t1 grant
      vote n1->n2 t1 last=0/0
      vote n1->n3 t1 last=0/0
      voteResponse n2->n1 t1 grant
      voteResponse n3->n1 t1 grant
      append n1->n2 t1 prev=0/0 n=1 commit=0
      append n1->n3 t1 prev=0/0 n=1 commit=0
      appendResponse n2->n1 t1 ok 1
      appendResponse n3->n1 t1 ok 1
      append n1->n2 t1 prev=1/1 n=0 commit=1
      appendResponse n2->n1 t1 ok 1
    > isolate 3
    > tick 3 40
    > stabilize
    > status
    n1 leader t1 last=1 commit=1
    n2 follower t1 last=1 commit=1
    n3 pre-candidate t1 last=1 commit=0
    > heal
    > tick 3 2
    > stabilize
      preVote n3->n1 t2 last=1/1
      preVote n3->n2 t2 last=1/1
    > tick 1 2
    > stabilize
      heartbeat n1->n2 t1 commit=1 ctx=0
      heartbeat n1->n3 t1 commit=1 ctx=0
      heartbeatResponse n2->n1 t1 ctx=0
      heartbeatResponse n3->n1 t1 ctx=0
    > status
    n1 leader t1 last=1 commit=1
    n2 follower t1 last=1 commit=1
    n3 follower t1 last=1 commit=1
    """

    /// Raft §5.3 fast backtracking: one rejection with a conflict term skips a whole run.
    static let backtracking = """
    campaign 1
    stabilize
    isolate 1
    propose 1 a
    propose 1 b
    propose 1 c
    stabilize
    campaign 2
    stabilize
    propose 2 x
    stabilize
    restart 2
    campaign 2           # term 3: its probe of node 1 starts past the divergence
    stabilize
    heal
    tick 2 2             # one rejection names term 1; the leader skips the whole run
    stabilize
    log 1
    log 2
    """

    static let backtrackingExpected = """
    > campaign 1
    > stabilize
      vote n1->n2 t1 last=0/0
      vote n1->n3 t1 last=0/0
      voteResponse n2->n1 t1 grant
      voteResponse n3->n1 t1 grant
      append n1->n2 t1 prev=0/0 n=1 commit=0
      append n1->n3 t1 prev=0/0 n=1 commit=0
      appendResponse n2->n1 t1 ok 1
      appendResponse n3->n1 t1 ok 1
      append n1->n2 t1 prev=1/1 n=0 commit=1
      appendResponse n2->n1 t1 ok 1
    > isolate 1
    > propose 1 a
    > propose 1 b
    > propose 1 c
    > stabilize
    > campaign 2
    > stabilize
      vote n2->n3 t2 last=1/1
      voteResponse n3->n2 t2 grant
      append n2->n3 t2 prev=1/1 n=1 commit=1
      appendResponse n3->n2 t2 ok 2
      append n2->n3 t2 prev=2/2 n=0 commit=2
      appendResponse n3->n2 t2 ok 2
    > propose 2 x
    > stabilize
      append n2->n3 t2 prev=2/2 n=1 commit=2
      appendResponse n3->n2 t2 ok 3
      append n2->n3 t2 prev=2/3 n=0 commit=3
      appendResponse n3->n2 t2 ok 3
    > restart 2
    > campaign 2
    > stabilize
      vote n2->n3 t3 last=2/3
      voteResponse n3->n2 t3 grant
      append n2->n3 t3 prev=2/3 n=1 commit=3
      appendResponse n3->n2 t3 ok 4
      append n2->n3 t3 prev=3/4 n=0 commit=4
      appendResponse n3->n2 t3 ok 4
    > heal
    > tick 2 2
    > stabilize
      heartbeat n2->n1 t3 commit=0 ctx=0
      heartbeat n2->n3 t3 commit=4 ctx=0
      heartbeatResponse n1->n2 t3 ctx=0
      heartbeatResponse n3->n2 t3 ctx=0
      append n2->n1 t3 prev=2/3 n=1 commit=4
      appendResponse n1->n2 t3 reject 3 hint=1 ct=1
      append n2->n1 t3 prev=1/1 n=3 commit=4
      appendResponse n1->n2 t3 ok 4
    > log 1
    n1: 1@1·noop 2@2·noop 3@2 4@3·noop
    > log 2
    n2: 1@1·noop 2@2·noop 3@2 4@3·noop
    """
}
