// Port of etcd-io/raft 3.4's raft_test.go, elections: leader election with and without pre-vote,
// learners, dueling candidates, votes from any state, stepping down, check-quorum (incl. the
// partitioned member that rejoins without disrupting the cluster), pre-vote migration.
import { describe, expect, it } from 'vitest';
import type { MemoryStorage } from '../../../src/raft/core/memory-storage';
import type { Raft } from '../../../src/raft/core/raft';
import { stepCandidate, stepFollower, stepLeader } from '../../../src/raft/core/raft-step';
import { ConfChangeType, MessageType, NONE, StateType, type RaftConfig } from '../../../src/raft/core/types';
import { voteRespMsgType } from '../../../src/raft/core/util';
import {
  Network, entry, ents, entsWithConfig, flat, hup, beat, msg, newTestLearnerRaft, newTestRaft, nextEnts, nopStepper,
  readMessages, setRandomizedElectionTimeout, storageWith, votedWithConfig,
} from './helpers';

const preVoteCfg: Partial<RaftConfig> = { preVote: true };

/** A raft's log as etcd's ltoa compares it: the commit index and the entries. */
function logOf(r: Raft): { committed: number; entries: [number, number, string][] } {
  return { committed: r.raftLog.committed, entries: flat(r.raftLog.allEntries()) };
}

function three(over: Partial<RaftConfig> = {}): [Raft, Raft, Raft] {
  return [newTestRaft(1, [1, 2, 3], 10, 1, undefined, over), newTestRaft(2, [1, 2, 3], 10, 1, undefined, over), newTestRaft(3, [1, 2, 3], 10, 1, undefined, over)];
}

describe('leader election', () => {
  for (const preVote of [false, true]) {
    const cfg = preVote ? preVoteCfg : undefined;
    // A failed pre-vote leaves the node pre-candidate at its old term.
    const candState = preVote ? StateType.PreCandidate : StateType.Candidate;
    const candTerm = preVote ? 0 : 1;
    it.each([
      [() => new Network([null, null, null], cfg), StateType.Leader, 1],
      [() => new Network([null, null, nopStepper], cfg), StateType.Leader, 1],
      [() => new Network([null, nopStepper, nopStepper], cfg), candState, candTerm],
      [() => new Network([null, nopStepper, nopStepper, null], cfg), candState, candTerm],
      [() => new Network([null, nopStepper, nopStepper, null, null], cfg), StateType.Leader, 1],
      // Three logs further along than 0, in the same term: rejections, not ignored votes.
      [() => new Network([null, entsWithConfig(cfg, 1), entsWithConfig(cfg, 1), entsWithConfig(cfg, 1, 1), null], cfg), StateType.Follower, 1],
    ] as [() => Network, StateType, number][])(`preVote=${preVote} #%#`, (mk, state, term) => {
      const nt = mk();
      nt.send(hup(1));
      expect(nt.raft(1).state).toBe(state);
      expect(nt.raft(1).term).toBe(term);
    });
  }

  it('a learner does not campaign on election timeout', () => {
    const n2 = newTestLearnerRaft(2, [1], [2], 10, 1);
    n2.becomeFollower(1, NONE);
    setRandomizedElectionTimeout(n2, n2.electionTimeout);
    for (let i = 0; i < n2.electionTimeout; i++) n2.tick();
    expect(n2.state).toBe(StateType.Follower);
  });

  it('a learner promoted to voter can campaign and win', () => {
    const n1 = newTestLearnerRaft(1, [1], [2], 10, 1);
    const n2 = newTestLearnerRaft(2, [1], [2], 10, 1);
    n1.becomeFollower(1, NONE);
    n2.becomeFollower(1, NONE);
    const nt = new Network([n1, n2]);
    expect(n1.state).not.toBe(StateType.Leader);
    // n1 is the only voter: it wins alone.
    setRandomizedElectionTimeout(n1, n1.electionTimeout);
    for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
    expect(n1.state).toBe(StateType.Leader);
    expect(n2.state).toBe(StateType.Follower);
    nt.send(beat(1));
    n1.applyConfChange({ nodeId: 2n, type: ConfChangeType.ADD_NODE });
    n2.applyConfChange({ nodeId: 2n, type: ConfChangeType.ADD_NODE });
    expect(n2.isLearner).toBe(false);
    // n2 starts an election and wins (n1 grants it: its log is up to date).
    setRandomizedElectionTimeout(n2, n2.electionTimeout);
    for (let i = 0; i < n2.electionTimeout; i++) n2.tick();
    nt.send(beat(2));
    expect(n1.state).toBe(StateType.Follower);
    expect(n2.state).toBe(StateType.Leader);
  });

  it('a learner grants votes (it may have been promoted without knowing)', () => {
    const n2 = newTestLearnerRaft(2, [1], [2], 10, 1);
    n2.becomeFollower(1, NONE);
    n2.step(msg({ type: MessageType.MsgVote, from: 1, to: 2, term: 2, logTerm: 11, index: 11 }));
    expect(n2.msgs).toHaveLength(1);
    expect(n2.msgs[0].type).toBe(MessageType.MsgVoteResp);
    expect(n2.msgs[0].reject).toBe(false);
  });

  it('a learner never campaigns, not even on MsgTimeoutNow', () => {
    const n1 = newTestRaft(1, [1], 10, 1);
    n1.applyConfChange({ nodeId: 2n, type: ConfChangeType.ADD_LEARNER_NODE });
    const n2 = newTestRaft(2, [1], 10, 1);
    n2.applyConfChange({ nodeId: 2n, type: ConfChangeType.ADD_LEARNER_NODE });
    const nt = new Network([n1, n2]);
    nt.send(hup(2));
    expect(n2.isLearner).toBe(true);
    expect(n2.state).toBe(StateType.Follower);
    nt.send(hup(1));
    expect(n1.state).toBe(StateType.Leader);
    expect(n1.lead).toBe(1n);
    nt.send(msg({ type: MessageType.MsgTimeoutNow, from: 1, to: 2 }));
    expect(n2.state).toBe(StateType.Follower);
  });

  for (const preVote of [false, true]) {
    it(`each member in turn wins an election (preVote=${preVote})`, () => {
      const n = new Network([null, null, null], preVote ? preVoteCfg : undefined);
      for (let c = 1; c <= 3; c++) {
        n.send(hup(c));
        for (let id = 1; id <= 3; id++) {
          expect(n.raft(id).state, `campaigner ${c}, member ${id}`).toBe(id === c ? StateType.Leader : StateType.Follower);
        }
      }
    });

    it(`a new leader overwrites newer uncommitted logs (preVote=${preVote})`, () => {
      const cfg = preVote ? preVoteCfg : undefined;
      // 1 won the first election; 2 got its log; 3 won the second; 4 and 5 voted but got no log.
      const n = new Network([entsWithConfig(cfg, 1), entsWithConfig(cfg, 1), entsWithConfig(cfg, 2), votedWithConfig(cfg, 3, 2), votedWithConfig(cfg, 3, 2)], cfg);
      // 1's first campaign fails (term 2 votes already cast) but moves everyone to term 2.
      n.send(hup(1));
      const sm1 = n.raft(1);
      expect(sm1.state).toBe(StateType.Follower);
      expect(sm1.term).toBe(2);
      // The second wins: 1 has the longest log with the highest... 1's term-1 entry overwrites 3's.
      n.send(hup(1));
      expect(sm1.state).toBe(StateType.Leader);
      expect(sm1.term).toBe(3);
      for (let id = 1; id <= 5; id++) {
        const es = n.raft(id).raftLog.allEntries();
        expect(es.map((e) => e.term), `member ${id}`).toEqual([1, 3]);
      }
    });
  }

  for (const vt of [MessageType.MsgVote, MessageType.MsgPreVote]) {
    it.each([StateType.Follower, StateType.PreCandidate, StateType.Candidate, StateType.Leader])(`${vt === MessageType.MsgVote ? 'MsgVote' : 'MsgPreVote'} of a higher term is granted from state %i`, (st) => {
      const r = newTestRaft(1, [1, 2, 3], 10, 1);
      r.term = 1;
      if (st === StateType.Follower) r.becomeFollower(r.term, 3n);
      else if (st === StateType.PreCandidate) r.becomePreCandidate();
      else if (st === StateType.Candidate) r.becomeCandidate();
      else {
        r.becomeCandidate();
        r.becomeLeader();
      }
      const origTerm = r.term;
      const newTerm = r.term + 1;
      r.step(msg({ type: vt, from: 2, to: 1, term: newTerm, logTerm: newTerm, index: 42 }));
      expect(r.msgs).toHaveLength(1);
      expect(r.msgs[0].type).toBe(voteRespMsgType(vt));
      expect(r.msgs[0].reject).toBe(false);
      if (vt === MessageType.MsgVote) {
        // A real vote moves the term and records the vote.
        expect(r.state).toBe(StateType.Follower);
        expect(r.term).toBe(newTerm);
        expect(r.vote).toBe(2n);
      } else {
        // A pre-vote changes nothing.
        expect(r.state).toBe(st);
        expect(r.term).toBe(origTerm);
        expect([NONE, 1n]).toContain(r.vote);
      }
    });
  }

  it('dueling candidates: the one with the shorter log loses, terms converge', () => {
    const [a, b, c] = three();
    const nt = new Network([a, b, c]);
    nt.cut(1, 3);
    nt.send(hup(1));
    nt.send(hup(3));
    // 1 wins with 2's vote; 3 gets no vote (2 already voted), stays candidate.
    expect(a.state).toBe(StateType.Leader);
    expect(c.state).toBe(StateType.Candidate);
    nt.recover();
    // 3 campaigns again at a higher term: rejected (its log is behind), but everyone moves to term 2.
    nt.send(hup(3));
    const wlog = { committed: 1, entries: [[1, 1, '']] };
    expect([a.state, a.term, logOf(a)]).toEqual([StateType.Follower, 2, wlog]);
    expect([b.state, b.term, logOf(b)]).toEqual([StateType.Follower, 2, wlog]);
    expect([c.state, c.term, logOf(c)]).toEqual([StateType.Follower, 2, { committed: 0, entries: [] }]);
  });

  it('dueling pre-candidates: the pre-vote fails without disturbing the leader', () => {
    const [a, b, c] = three(preVoteCfg);
    const nt = new Network([a, b, c]);
    nt.cut(1, 3);
    nt.send(hup(1));
    nt.send(hup(3));
    expect(a.state).toBe(StateType.Leader);
    // 3's pre-vote was refused by 2, which has a leader now.
    expect(c.state).toBe(StateType.Follower);
    nt.recover();
    nt.send(hup(3));
    const wlog = { committed: 1, entries: [[1, 1, '']] };
    expect([a.state, a.term, logOf(a)]).toEqual([StateType.Leader, 1, wlog]);
    expect([b.state, b.term, logOf(b)]).toEqual([StateType.Follower, 1, wlog]);
    expect([c.state, c.term, logOf(c)]).toEqual([StateType.Follower, 1, { committed: 0, entries: [] }]);
  });

  it('a candidate concedes to a leader of its term', () => {
    const tt = new Network([null, null, null]);
    tt.isolate(1);
    tt.send(hup(1));
    tt.send(hup(3));
    // Heal; 3 is leader; 1 becomes follower.
    tt.recover();
    tt.send(beat(3));
    tt.send(msg({ type: MessageType.MsgProp, from: 3, to: 3, entries: [entry(0, 0, 'force follower')] }));
    tt.send(beat(3));
    const a = tt.raft(1);
    expect(a.state).toBe(StateType.Follower);
    expect(a.term).toBe(1);
    for (let id = 1; id <= 3; id++) expect(logOf(tt.raft(id))).toEqual({ committed: 2, entries: [[1, 1, ''], [2, 1, 'force follower']] });
  });

  it.each([false, true])('a single member becomes leader at once (preVote=%s)', (preVote) => {
    const tt = new Network([null], preVote ? preVoteCfg : undefined);
    tt.send(hup(1));
    expect(tt.raft(1).state).toBe(StateType.Leader);
  });

  it.each([false, true])('campaigning while leader changes nothing (preVote=%s)', (preVote) => {
    const r = newTestRaft(1, [1], 5, 1, undefined, { preVote });
    expect(r.state).toBe(StateType.Follower);
    r.step(hup(1));
    expect(r.state).toBe(StateType.Leader);
    const term = r.term;
    r.step(hup(1));
    expect(r.state).toBe(StateType.Leader);
    expect(r.term).toBe(term);
  });

  it('old messages from a deposed leader are ignored', () => {
    const tt = new Network([null, null, null]);
    // Leaders at terms 1, 2, 3.
    tt.send(hup(1));
    tt.send(hup(2));
    tt.send(hup(1));
    // A term-2 append from the old leader 2 is ignored.
    tt.send(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 2, entries: [entry(3, 2)] }));
    // A new entry commits all of them.
    tt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0, 'somedata')] }));
    const want = { committed: 4, entries: [[1, 1, ''], [2, 2, ''], [3, 3, ''], [4, 3, 'somedata']] };
    for (let id = 1; id <= 3; id++) expect(logOf(tt.raft(id))).toEqual(want);
  });

  it.each([
    [5, 0, false],
    [10, 0.1, true],
    [13, 0.4, true],
    [15, 0.6, true],
    [18, 0.9, true],
    [20, 1, false],
  ])('past the election timeout after %i ticks with probability %d', (elapse, wprob, round) => {
    const sm = newTestRaft(1, [1], 10, 1);
    sm.electionElapsed = elapse;
    let c = 0;
    for (let j = 0; j < 10000; j++) {
      sm.resetRandomizedElectionTimeout();
      if (sm.pastElectionTimeout()) c++;
    }
    let got = c / 10000;
    if (round) got = Math.floor(got * 10 + 0.5) / 10;
    expect(got).toBe(wprob);
  });

  for (const mt of [MessageType.MsgVote, MessageType.MsgPreVote]) {
    describe(`receiving ${mt === MessageType.MsgVote ? 'MsgVote' : 'MsgPreVote'}`, () => {
      // The voter's log: (1, 2), (2, 2).
      it.each([
        [StateType.Follower, 0, 0, NONE, true],
        [StateType.Follower, 0, 1, NONE, true],
        [StateType.Follower, 0, 2, NONE, true],
        [StateType.Follower, 0, 3, NONE, false],
        [StateType.Follower, 1, 0, NONE, true],
        [StateType.Follower, 1, 1, NONE, true],
        [StateType.Follower, 1, 2, NONE, true],
        [StateType.Follower, 1, 3, NONE, false],
        [StateType.Follower, 2, 0, NONE, true],
        [StateType.Follower, 2, 1, NONE, true],
        [StateType.Follower, 2, 2, NONE, false],
        [StateType.Follower, 2, 3, NONE, false],
        [StateType.Follower, 3, 0, NONE, true],
        [StateType.Follower, 3, 1, NONE, true],
        [StateType.Follower, 3, 2, NONE, false],
        [StateType.Follower, 3, 3, NONE, false],
        [StateType.Follower, 3, 2, 2n, false],
        [StateType.Follower, 3, 2, 1n, true],
        [StateType.Leader, 3, 3, 1n, true],
        [StateType.PreCandidate, 3, 3, 1n, true],
        [StateType.Candidate, 3, 3, 1n, true],
      ] as [StateType, number, number, bigint, boolean][])('state %i, candidate log %i/%i, voted %s: reject %s', (state, index, logTerm, voteFor, wreject) => {
        const sm = newTestRaft(1, [1], 10, 1, storageWith([1], ents([1, 2], [2, 2])));
        sm.state = state;
        sm.stepFn = state === StateType.Follower ? stepFollower : state === StateType.Leader ? stepLeader : stepCandidate;
        sm.vote = voteFor;
        const term = Math.max(sm.raftLog.lastTerm(), logTerm);
        sm.term = term;
        sm.step(msg({ type: mt, term, from: 2, index, logTerm }));
        const msgs = readMessages(sm);
        expect(msgs).toHaveLength(1);
        expect(msgs[0].type).toBe(voteRespMsgType(mt));
        expect(msgs[0].reject).toBe(wreject);
      });
    });
  }

  it.each([
    [StateType.Follower, StateType.Follower, true, 1, NONE],
    [StateType.Follower, StateType.PreCandidate, true, 0, NONE],
    [StateType.Follower, StateType.Candidate, true, 1, NONE],
    [StateType.Follower, StateType.Leader, false, 0, NONE],
    [StateType.PreCandidate, StateType.Follower, true, 0, NONE],
    [StateType.PreCandidate, StateType.PreCandidate, true, 0, NONE],
    [StateType.PreCandidate, StateType.Candidate, true, 1, NONE],
    [StateType.PreCandidate, StateType.Leader, true, 0, 1n],
    [StateType.Candidate, StateType.Follower, true, 0, NONE],
    [StateType.Candidate, StateType.PreCandidate, true, 0, NONE],
    [StateType.Candidate, StateType.Candidate, true, 1, NONE],
    [StateType.Candidate, StateType.Leader, true, 0, 1n],
    [StateType.Leader, StateType.Follower, true, 1, NONE],
    [StateType.Leader, StateType.PreCandidate, false, 0, NONE],
    [StateType.Leader, StateType.Candidate, false, 1, NONE],
    [StateType.Leader, StateType.Leader, true, 0, 1n],
  ] as [StateType, StateType, boolean, number, bigint][])('state transition %i -> %i allowed %s', (from, to, wallow, wterm, wlead) => {
    const sm = newTestRaft(1, [1], 10, 1);
    sm.state = from;
    const go = (): void => {
      if (to === StateType.Follower) sm.becomeFollower(wterm, wlead);
      else if (to === StateType.PreCandidate) sm.becomePreCandidate();
      else if (to === StateType.Candidate) sm.becomeCandidate();
      else sm.becomeLeader();
    };
    if (!wallow) {
      expect(go).toThrow(/invalid transition/);
      return;
    }
    go();
    expect(sm.term).toBe(wterm);
    expect(sm.lead).toBe(wlead);
  });

  it.each([
    [StateType.Follower, 0],
    [StateType.PreCandidate, 0],
    [StateType.Candidate, 0],
    [StateType.Leader, 1],
  ])('every state steps down on a higher term (state %i)', (state, windex) => {
    const tterm = 3;
    const sm = newTestRaft(1, [1, 2, 3], 10, 1);
    if (state === StateType.Follower) sm.becomeFollower(1, NONE);
    else if (state === StateType.PreCandidate) sm.becomePreCandidate();
    else if (state === StateType.Candidate) sm.becomeCandidate();
    else {
      sm.becomeCandidate();
      sm.becomeLeader();
    }
    for (const mt of [MessageType.MsgVote, MessageType.MsgApp]) {
      sm.step(msg({ type: mt, from: 2, term: tterm, logTerm: tterm }));
      expect(sm.state).toBe(StateType.Follower);
      expect(sm.term).toBe(tterm);
      expect(sm.raftLog.lastIndex()).toBe(windex);
      expect(sm.raftLog.allEntries()).toHaveLength(windex);
      expect(sm.lead).toBe(mt === MessageType.MsgVote ? NONE : 2n);
    }
  });

  it.each([MessageType.MsgHeartbeat, MessageType.MsgApp])('a candidate at a higher term resets its term on %i from the leader', (mt) => {
    const [a, b, c] = three();
    const nt = new Network([a, b, c]);
    nt.send(hup(1));
    expect([a.state, b.state, c.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Follower]);
    // 3 isolated; 2's campaign moves 1 and 2 to term 2, then 1 wins again at term 3.
    nt.isolate(3);
    nt.send(hup(2));
    nt.send(hup(1));
    expect([a.state, b.state]).toEqual([StateType.Leader, StateType.Follower]);
    // 3 times out and campaigns alone.
    c.resetRandomizedElectionTimeout();
    for (let i = 0; i < c.randomizedElectionTimeout; i++) c.tick();
    expect(c.state).toBe(StateType.Candidate);
    nt.recover();
    // A message from the leader at its term (lower than 3's) sets 3 back to the leader's term.
    nt.send(msg({ type: mt, from: 1, to: 3, term: a.term }));
    expect(c.state).toBe(StateType.Follower);
    expect(c.term).toBe(a.term);
  });

  it('a member not in the configuration ignores MsgTimeoutNow and votes', () => {
    const r = newTestRaft(1, [2, 3, 4], 5, 1);
    r.step(msg({ type: MessageType.MsgTimeoutNow, from: 2, to: 1 }));
    r.step(msg({ type: MessageType.MsgVoteResp, from: 2, to: 1 }));
    r.step(msg({ type: MessageType.MsgVoteResp, from: 3, to: 1 }));
    expect(r.state).toBe(StateType.Follower);
  });
});

describe('check quorum', () => {
  it('a leader that hears from a quorum stays leader', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1, undefined, { checkQuorum: true });
    sm.becomeCandidate();
    sm.becomeLeader();
    for (let i = 0; i < sm.electionTimeout + 1; i++) {
      sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, term: sm.term }));
      sm.tick();
    }
    expect(sm.state).toBe(StateType.Leader);
  });

  it('a leader that hears from no quorum within an election timeout steps down', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1, undefined, { checkQuorum: true });
    sm.becomeCandidate();
    sm.becomeLeader();
    for (let i = 0; i < sm.electionTimeout + 1; i++) sm.tick();
    expect(sm.state).toBe(StateType.Follower);
  });

  it('votes are not granted while the leader lease holds, then are', () => {
    const [a, b, c] = three({ checkQuorum: true });
    const nt = new Network([a, b, c]);
    setRandomizedElectionTimeout(b, b.electionTimeout + 1);
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(1));
    expect(a.state).toBe(StateType.Leader);
    expect(c.state).toBe(StateType.Follower);
    nt.send(hup(3));
    // 2 heard from the leader recently: it ignores 3's vote request.
    expect(c.state).toBe(StateType.Candidate);
    // Once 2's lease has run out, 3 can win.
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(3));
    expect(c.state).toBe(StateType.Leader);
  });

  it('an election with check quorum succeeds once the leases expired', () => {
    const [a, b, c] = three({ checkQuorum: true });
    const nt = new Network([a, b, c]);
    setRandomizedElectionTimeout(a, a.electionTimeout + 1);
    setRandomizedElectionTimeout(b, b.electionTimeout + 2);
    // The first election succeeds at once (no leader known anywhere).
    nt.send(hup(1));
    expect(a.state).toBe(StateType.Leader);
    expect(c.state).toBe(StateType.Follower);
    // Leases expired everywhere; a new election succeeds.
    setRandomizedElectionTimeout(a, a.electionTimeout + 1);
    setRandomizedElectionTimeout(b, b.electionTimeout + 2);
    for (let i = 0; i < a.electionTimeout; i++) a.tick();
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(3));
    expect(a.state).toBe(StateType.Follower);
    expect(c.state).toBe(StateType.Leader);
  });

  it('a candidate stuck at a higher term is freed: the leader steps down on its answer', () => {
    const [a, b, c] = three({ checkQuorum: true });
    const nt = new Network([a, b, c]);
    setRandomizedElectionTimeout(b, b.electionTimeout + 1);
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(1));
    nt.isolate(1);
    nt.send(hup(3));
    expect(b.state).toBe(StateType.Follower);
    expect(c.state).toBe(StateType.Candidate);
    expect(c.term).toBe(b.term + 1);
    // Again, a higher term.
    nt.send(hup(3));
    expect(b.state).toBe(StateType.Follower);
    expect(c.state).toBe(StateType.Candidate);
    expect(c.term).toBe(b.term + 2);
    nt.recover();
    nt.send(msg({ type: MessageType.MsgHeartbeat, from: 1, to: 3, term: a.term }));
    // The leader is disrupted, so the stuck member is freed.
    expect(a.state).toBe(StateType.Follower);
    expect(c.term).toBe(a.term);
    // Vote again: 3 wins.
    nt.send(hup(3));
    expect(c.state).toBe(StateType.Leader);
  });

  it('a voter that is not promotable (removed) follows the leader and does not campaign', () => {
    const a = newTestRaft(1, [1, 2], 10, 1, undefined, { checkQuorum: true });
    const b = newTestRaft(2, [1], 10, 1, undefined, { checkQuorum: true });
    const nt = new Network([a, b]);
    setRandomizedElectionTimeout(b, b.electionTimeout + 1);
    // 2 is removed from its own configuration (it thinks).
    b.applyConfChange({ type: ConfChangeType.REMOVE_NODE, nodeId: 2n });
    expect(b.promotable()).toBe(false);
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(1));
    expect(a.state).toBe(StateType.Leader);
    expect(b.state).toBe(StateType.Follower);
    expect(b.lead).toBe(1n);
  });

  it('a partitioned follower that moved its term disrupts the leader (without pre-vote)', () => {
    const [n1, n2, n3] = three({ checkQuorum: true });
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    const nt = new Network([n1, n2, n3]);
    nt.send(hup(1));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Follower]);
    // 3 misses heartbeats (its clock runs ahead) and campaigns at term 3.
    setRandomizedElectionTimeout(n3, n3.electionTimeout + 2);
    for (let i = 0; i < n3.randomizedElectionTimeout - 1; i++) n3.tick();
    n3.tick();
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Candidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 3]);
    // The leader's heartbeat reaches 3, whose answer at term 3 makes the leader step down.
    nt.send(msg({ type: MessageType.MsgHeartbeat, from: 1, to: 3, term: n1.term }));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Follower, StateType.Follower, StateType.Candidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([3, 2, 3]);
  });

  it('with pre-vote, a partitioned member rejoins without disrupting the leader', () => {
    const [n1, n2, n3] = three({ checkQuorum: true });
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    const nt = new Network([n1, n2, n3]);
    nt.send(hup(1));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Follower]);
    nt.isolate(3);
    for (let i = 0; i < 3; i++) nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0, 'somedata')] }));
    n1.preVote = true;
    n2.preVote = true;
    n3.preVote = true;
    nt.recover();
    nt.send(hup(3));
    // 3's pre-vote fails: its log is behind, and the others are in the leader's lease.
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.PreCandidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 2]);
    // The leader's heartbeat: 3 follows; the leader stays.
    nt.send(msg({ type: MessageType.MsgHeartbeat, from: 1, to: 3, term: n1.term }));
    expect(n1.state).toBe(StateType.Leader);
  });
});

describe('pre-vote', () => {
  it('a member with a smaller term can complete an election', () => {
    const [n1, n2, n3] = three({ preVote: true });
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    const nt = new Network([n1, n2, n3]);
    nt.cut(1, 3);
    nt.cut(2, 3);
    nt.send(hup(1));
    expect(n1.state).toBe(StateType.Leader);
    expect(n2.state).toBe(StateType.Follower);
    nt.send(hup(3));
    expect(n3.state).toBe(StateType.PreCandidate);
    nt.send(hup(2));
    // 1 and 2 at term 3 with 2 leader; 3 still pre-candidate at term 1.
    expect([n1.term, n2.term, n3.term]).toEqual([3, 3, 1]);
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Follower, StateType.Leader, StateType.PreCandidate]);
    // Bring back 3 and cut 2 off: 1 or 3 must be able to win.
    nt.recover();
    nt.cut(2, 1);
    nt.cut(2, 3);
    nt.send(hup(3));
    nt.send(hup(1));
    expect(n1.state === StateType.Leader || n3.state === StateType.Leader).toBe(true);
  });

  it('a split vote among pre-candidates resolves in a later term', () => {
    const [n1, n2, n3] = three({ preVote: true });
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    const nt = new Network([n1, n2, n3]);
    nt.send(hup(1));
    nt.isolate(1);
    // 2 and 3 both pass pre-vote and split the vote at term 3.
    nt.send(hup(2), hup(3));
    expect([n2.term, n3.term]).toEqual([3, 3]);
    expect([n2.state, n3.state]).toEqual([StateType.Candidate, StateType.Candidate]);
    // 2 campaigns again and wins at term 4.
    nt.send(hup(2));
    expect([n2.term, n3.term]).toEqual([4, 4]);
    expect([n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower]);
  });

  it('with check quorum, the leader\'s followers elect a new leader once it is isolated', () => {
    const [n1, n2, n3] = three({ preVote: true, checkQuorum: true });
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    const nt = new Network([n1, n2, n3]);
    nt.send(hup(1));
    nt.isolate(1);
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Follower]);
    // 3's pre-vote: 2 is in its lease and refuses, but 3 becomes pre-candidate, dropping its leader...
    nt.send(hup(3));
    // ...so 2's pre-vote is granted by 3, and 2 wins.
    nt.send(hup(2));
    expect(n2.state === StateType.Leader || n3.state === StateType.Follower).toBe(true);
    expect(n2.state).toBe(StateType.Leader);
  });

  /**
   * Three members, 1 and 2 with pre-vote, 3 without (mid migration). 3 is isolated, misses an entry
   * and campaigns twice, reaching term 4; then it is enabled for pre-vote and heals.
   */
  function preVoteMigrationCluster(): { nt: Network; n1: Raft; n2: Raft; n3: Raft } {
    const [n1, n2, n3] = three();
    for (const n of [n1, n2, n3]) n.becomeFollower(1, NONE);
    n1.preVote = true;
    n2.preVote = true;
    const nt = new Network([n1, n2, n3]);
    nt.send(hup(1));
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0, 'some data')] }));
    nt.send(hup(3));
    nt.send(hup(3));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.Candidate]);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 4]);
    n3.preVote = true;
    nt.recover();
    return { nt, n1, n2, n3 };
  }

  it('migration: an election can complete with the member at a higher term', () => {
    const { nt, n2, n3 } = preVoteMigrationCluster();
    nt.isolate(1);
    nt.send(hup(3));
    nt.send(hup(2));
    expect(n2.state).toBe(StateType.Follower);
    expect(n3.state).toBe(StateType.PreCandidate);
    nt.send(hup(3));
    nt.send(hup(2));
    expect(n2.state).toBe(StateType.Leader);
  });

  it('migration: a stuck pre-candidate is freed by the leader\'s heartbeat', () => {
    const { nt, n1, n2, n3 } = preVoteMigrationCluster();
    nt.send(hup(3));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.PreCandidate]);
    nt.send(hup(3));
    expect([n1.state, n2.state, n3.state]).toEqual([StateType.Leader, StateType.Follower, StateType.PreCandidate]);
    // The leader's heartbeat: 3 answers at term 4; the leader steps down; terms converge.
    nt.send(msg({ type: MessageType.MsgHeartbeat, from: 1, to: 3, term: n1.term }));
    expect(n1.state).toBe(StateType.Follower);
    expect(n3.term).toBe(n1.term);
  });
});

describe('leader transfer', () => {
  function checkTransfer(r: Raft, state: StateType, lead: number): void {
    expect(r.state).toBe(state);
    expect(r.lead).toBe(BigInt(lead));
    expect(r.leadTransferee).toBe(NONE);
  }

  function elected(): { nt: Network; lead: Raft } {
    const nt = new Network([null, null, null]);
    nt.send(hup(1));
    const lead = nt.raft(1);
    expect(lead.lead).toBe(1n);
    return { nt, lead };
  }

  it('to an up-to-date member, and back', () => {
    const { nt, lead } = elected();
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 2, to: 1 }));
    checkTransfer(lead, StateType.Follower, 2);
    // After some log replication, transfer back.
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 1, to: 2 }));
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('asked through a follower (forwarded to the leader)', () => {
    const { nt, lead } = elected();
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 2, to: 2 }));
    checkTransfer(lead, StateType.Follower, 2);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 1, to: 1 }));
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('with check quorum: the transferee campaigns even within the leader lease', () => {
    const nt = new Network([null, null, null]);
    for (let i = 1; i < 4; i++) {
      const r = nt.raft(i);
      r.checkQuorum = true;
      setRandomizedElectionTimeout(r, r.electionTimeout + i);
    }
    // Let 2's lease expire so it can vote in the first election.
    const f = nt.raft(2);
    for (let i = 0; i < f.electionTimeout; i++) f.tick();
    nt.send(hup(1));
    const lead = nt.raft(1);
    expect(lead.lead).toBe(1n);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 2, to: 1 }));
    checkTransfer(lead, StateType.Follower, 2);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 1, to: 2 }));
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('to a slow follower: it is caught up first', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    nt.recover();
    expect(lead.prs.progress.get(3n)!.match).toBe(1);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    checkTransfer(lead, StateType.Follower, 3);
  });

  it('to a follower that needs a snapshot first', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    nextEnts(lead);
    const s = lead.raftLog.storage as MemoryStorage;
    s.createSnapshot(lead.raftLog.applied, { voters: lead.prs.voterNodes(), learners: [] });
    s.compact(lead.raftLog.applied);
    nt.recover();
    expect(lead.prs.progress.get(3n)!.match).toBe(1);
    // The transfer sends the snapshot; 3 restores it and, once it answers, gets MsgTimeoutNow.
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    nt.send(msg({ type: MessageType.MsgHeartbeatResp, from: 3, to: 1 }));
    checkTransfer(lead, StateType.Follower, 3);
  });

  it('a transfer request forwarded twice (the first follower thought the second led) is forwarded again, not fatal', () => {
    const { nt, lead } = elected();
    // 3 forwards to 2 believing it leads; 2 forwards to the real leader: 2 becomes leader.
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 2, term: lead.term }));
    checkTransfer(lead, StateType.Follower, 2);
  });

  it('to itself, or to a member that does not exist: nothing happens', () => {
    const { nt, lead } = elected();
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 1, to: 1 }));
    checkTransfer(lead, StateType.Leader, 1);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 4, to: 1 }));
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('is abandoned after an election timeout', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    for (let i = 0; i < lead.heartbeatTimeout; i++) lead.tick();
    expect(lead.leadTransferee).toBe(3n);
    for (let i = 0; i < lead.electionTimeout - lead.heartbeatTimeout; i++) lead.tick();
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('proposals are held while it is under way (not appended), and appended if it is abandoned', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    nt.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    lead.step(msg({ type: MessageType.MsgProp, from: 2, to: 1, entries: [entry(0, 0)] }));
    expect(lead.prs.progress.get(1n)!.match).toBe(1);
    expect(lead.heldProposals).toHaveLength(2);
    // An election timeout later the transfer is abandoned: the held proposals go into the log.
    for (let i = 0; i < lead.electionTimeout; i++) lead.tick();
    expect(lead.leadTransferee).toBe(0n);
    expect(lead.heldProposals).toHaveLength(0);
    expect(lead.raftLog.lastIndex()).toBe(3);
  });

  it('held proposals are dropped when no leader takes them within two election timeouts', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    lead.step(msg({ type: MessageType.MsgProp, from: 2, to: 1, entries: [entry(0, 0)] }));
    expect(lead.heldProposals).toHaveLength(1);
    // It steps down with no leader known (a higher term, say): the proposal may not apply late.
    lead.becomeFollower(lead.term + 1, 0n);
    for (let i = 0; i < 2 * lead.electionTimeout; i++) lead.tick();
    expect(lead.heldProposals).toHaveLength(1);
    lead.tick();
    expect(lead.heldProposals).toHaveLength(0);
    expect(lead.raftLog.lastIndex()).toBe(1);
  });

  it('held proposals go to the new leader once it is known', () => {
    const { nt, lead } = elected();
    nt.ignore(MessageType.MsgTimeoutNow);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    lead.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    expect(lead.heldProposals).toHaveLength(1);
    // Member 3 wins an election; the old leader forwards what it held once it hears from 3.
    nt.recover();
    nt.send(msg({ type: MessageType.MsgHup, from: 3, to: 3 }));
    expect(lead.state).toBe(StateType.Follower);
    expect(lead.lead).toBe(3n);
    expect(lead.heldProposals).toHaveLength(0);
    const newLead = nt.peers.get(3n) as unknown as { raftLog: { lastIndex(): number } };
    // The no-op of term 2 and the forwarded proposal.
    expect(newLead.raftLog.lastIndex()).toBe(3);
  });

  it('a higher-term vote ends it', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    nt.send(msg({ type: MessageType.MsgHup, from: 2, to: 2, index: 1, term: 2 }));
    checkTransfer(lead, StateType.Follower, 2);
  });

  it('removing the transferee aborts it', () => {
    const { nt, lead } = elected();
    nt.ignore(MessageType.MsgTimeoutNow);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    lead.applyConfChange({ nodeId: 3n, type: ConfChangeType.REMOVE_NODE });
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('a transfer back to the leader aborts it', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 1, to: 1 }));
    checkTransfer(lead, StateType.Leader, 1);
  });

  it('a second transfer to another member replaces the first', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 2, to: 1 }));
    checkTransfer(lead, StateType.Follower, 2);
  });

  it('a second transfer to the same member does not extend the timeout', () => {
    const { nt, lead } = elected();
    nt.isolate(3);
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(lead.leadTransferee).toBe(3n);
    for (let i = 0; i < lead.heartbeatTimeout; i++) lead.tick();
    nt.send(msg({ type: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    for (let i = 0; i < lead.electionTimeout - lead.heartbeatTimeout; i++) lead.tick();
    checkTransfer(lead, StateType.Leader, 1);
  });
});
