// Port of etcd-io/raft 3.4's raft_paper_test.go: the rules of the raft paper (sections 5.1-5.4),
// one test each. Where the leader's own copy of an entry counts toward commit, these tests make it
// durable first (persist), as the driver's fsync would: this core counts it only then.
import { describe, expect, it } from 'vitest';
import { MessageType, NONE, StateType, type Entry, type Message } from '../../../src/raft/core/types';
import {
  Network, acceptAndReply, commitNoopEntry, entry, ents, idsBySize, msg, mustAppendEntry, newTestRaft, nextEnts,
  nopStepper, persist, readMessages, sortMsgs, storageWith,
} from './helpers';

const someData = (): Entry[] => [entry(0, 0, 'some data')];

describe('raft paper: terms (5.1)', () => {
  it.each([StateType.Follower, StateType.Candidate, StateType.Leader])('state %i updates its term from a message with a higher term and becomes follower', (state) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    if (state === StateType.Follower) r.becomeFollower(1, 2n);
    else if (state === StateType.Candidate) r.becomeCandidate();
    else {
      r.becomeCandidate();
      r.becomeLeader();
    }
    r.step(msg({ type: MessageType.MsgApp, term: 2 }));
    expect(r.term).toBe(2);
    expect(r.state).toBe(StateType.Follower);
  });

  it('ignores a request with a stale term', () => {
    let called = false;
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.stepFn = () => {
      called = true;
    };
    r.loadState({ term: 2, vote: NONE, commit: 0 });
    r.step(msg({ type: MessageType.MsgApp, term: r.term - 1 }));
    expect(called).toBe(false);
  });
});

describe('raft paper: leader election (5.2)', () => {
  it('starts as follower', () => {
    expect(newTestRaft(1, [1, 2, 3], 10, 1).state).toBe(StateType.Follower);
  });

  it('a leader sends heartbeats (no index, no entries) every heartbeat interval', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 10; i++) mustAppendEntry(r, entry(i + 1, 0));
    r.tick();
    expect(sortMsgs(readMessages(r))).toEqual([
      msg({ from: 1, to: 2, term: 1, type: MessageType.MsgHeartbeat }),
      msg({ from: 1, to: 3, term: 1, type: MessageType.MsgHeartbeat }),
    ]);
  });

  it.each([StateType.Follower, StateType.Candidate])('state %i starts an election after the election timeout', (state) => {
    const et = 10;
    const r = newTestRaft(1, [1, 2, 3], et, 1);
    if (state === StateType.Follower) r.becomeFollower(1, 2n);
    else r.becomeCandidate();
    for (let i = 1; i < 2 * et; i++) r.tick();
    expect(r.term).toBe(2);
    expect(r.state).toBe(StateType.Candidate);
    expect(r.prs.votes.get(r.id)).toBe(true);
    expect(sortMsgs(readMessages(r))).toEqual([
      msg({ from: 1, to: 2, term: 2, type: MessageType.MsgVote }),
      msg({ from: 1, to: 3, term: 2, type: MessageType.MsgVote }),
    ]);
  });

  it.each([
    // Wins with votes from a majority.
    [1, {}, StateType.Leader],
    [3, { 2: true, 3: true }, StateType.Leader],
    [3, { 2: true }, StateType.Leader],
    [5, { 2: true, 3: true, 4: true, 5: true }, StateType.Leader],
    [5, { 2: true, 3: true, 4: true }, StateType.Leader],
    [5, { 2: true, 3: true }, StateType.Leader],
    // Back to follower on denial from a majority.
    [3, { 2: false, 3: false }, StateType.Follower],
    [5, { 2: false, 3: false, 4: false, 5: false }, StateType.Follower],
    [5, { 2: true, 3: false, 4: false, 5: false }, StateType.Follower],
    // Stays candidate without a majority either way.
    [3, {}, StateType.Candidate],
    [5, { 2: true }, StateType.Candidate],
    [5, { 2: false, 3: false }, StateType.Candidate],
    [5, {}, StateType.Candidate],
  ] as [number, Record<number, boolean>, StateType][])('one round of RequestVote: %i members, votes %j -> state %i', (size, votes, state) => {
    const r = newTestRaft(1, idsBySize(size), 10, 1);
    r.step(msg({ type: MessageType.MsgHup, from: 1, to: 1 }));
    for (const [id, v] of Object.entries(votes)) r.step(msg({ type: MessageType.MsgVoteResp, from: Number(id), to: 1, term: r.term, reject: !v }));
    expect(r.state).toBe(state);
    expect(r.term).toBe(1);
  });

  it.each([
    [NONE, 1n, false],
    [NONE, 2n, false],
    [1n, 1n, false],
    [2n, 2n, false],
    [1n, 2n, true],
    [2n, 1n, true],
  ])('a follower votes at most once per term, first come first served: voted %s, asked by %s', (vote, nvote, wreject) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.loadState({ term: 1, vote, commit: 0 });
    r.step(msg({ type: MessageType.MsgVote, from: nvote, to: 1, term: 1 }));
    expect(readMessages(r)).toEqual([msg({ type: MessageType.MsgVoteResp, from: 1, to: nvote, term: 1, reject: wreject })]);
  });

  it.each([1, 2])('a candidate falls back to follower on an append from a leader of term %i', (term) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.step(msg({ type: MessageType.MsgHup, from: 1, to: 1 }));
    expect(r.state).toBe(StateType.Candidate);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term }));
    expect(r.state).toBe(StateType.Follower);
    expect(r.term).toBe(term);
  });

  it.each([StateType.Follower, StateType.Candidate])('state %i: election timeouts are randomized over [et+1, 2et)', (state) => {
    const et = 10;
    const r = newTestRaft(1, [1, 2, 3], et, 1);
    const timeouts = new Set<number>();
    for (let round = 0; round < 50 * et; round++) {
      if (state === StateType.Follower) r.becomeFollower(r.term + 1, 2n);
      else r.becomeCandidate();
      let time = 0;
      while (readMessages(r).length === 0) {
        r.tick();
        time++;
      }
      timeouts.add(time);
    }
    for (let d = et + 1; d < 2 * et; d++) expect(timeouts.has(d), `timeout in ${d} ticks`).toBe(true);
    expect(Math.max(...timeouts)).toBeLessThanOrEqual(2 * et);
  });

  it.each([StateType.Follower, StateType.Candidate])('state %i: mostly a single member times out first (few split votes)', (state) => {
    const et = 10;
    const ids = idsBySize(5);
    const rs = ids.map((id) => newTestRaft(id, ids, et, 1));
    let conflicts = 0;
    for (let round = 0; round < 1000; round++) {
      for (const r of rs) {
        if (state === StateType.Follower) r.becomeFollower(r.term + 1, NONE);
        else r.becomeCandidate();
      }
      let timeoutNum = 0;
      while (timeoutNum === 0) {
        for (const r of rs) {
          r.tick();
          if (readMessages(r).length > 0) timeoutNum++;
        }
      }
      if (timeoutNum > 1) conflicts++;
    }
    expect(conflicts / 1000).toBeLessThanOrEqual(0.3);
  });
});

describe('raft paper: log replication (5.3)', () => {
  it('the leader appends a proposal and sends it with the preceding index and term', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: someData() }));
    expect(r.raftLog.lastIndex()).toBe(li + 1);
    expect(r.raftLog.committed).toBe(li);
    const wents = [entry(li + 1, 1, 'some data')];
    expect(sortMsgs(readMessages(r))).toEqual([
      msg({ from: 1, to: 2, term: 1, type: MessageType.MsgApp, index: li, logTerm: 1, entries: wents, commit: li }),
      msg({ from: 1, to: 3, term: 1, type: MessageType.MsgApp, index: li, logTerm: 1, entries: wents, commit: li }),
    ]);
    // Written to stable storage: handed out for persisting.
    expect(r.raftLog.unstableEntries()).toEqual(wents);
  });

  it('the leader commits a replicated entry, hands it out and tells followers the new commit', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: someData() }));
    for (const m of readMessages(r)) r.step(acceptAndReply(m));
    expect(r.raftLog.committed).toBe(li + 1);
    expect(nextEnts(r)).toEqual([entry(li + 1, 1, 'some data')]);
    const msgs = sortMsgs(readMessages(r));
    expect(msgs.map((m) => [m.to, m.type, m.commit])).toEqual([[2n, MessageType.MsgApp, li + 1], [3n, MessageType.MsgApp, li + 1]]);
  });

  it.each([
    [1, [], true],
    [3, [], false],
    [3, [2], true],
    [3, [2, 3], true],
    [5, [], false],
    [5, [2], false],
    [5, [2, 3], true],
    [5, [2, 3, 4], true],
    [5, [2, 3, 4, 5], true],
  ] as [number, number[], boolean][])('%i members, acknowledged by %j and the leader (durably): committed %s', (size, acceptors, wack) => {
    const r = newTestRaft(1, idsBySize(size), 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: someData() }));
    persist(r);
    for (const m of readMessages(r)) if (acceptors.includes(Number(m.to))) r.step(acceptAndReply(m));
    expect(r.raftLog.committed > li).toBe(wack);
  });

  it.each([
    [3, [2], false],
    [3, [2, 3], true],
    [5, [2, 3], false],
    [5, [2, 3, 4], true],
  ] as [number, number[], boolean][])('durability: %i members, acknowledged by %j, the leader not yet durable: committed %s', (size, acceptors, wack) => {
    const r = newTestRaft(1, idsBySize(size), 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: someData() }));
    for (const m of readMessages(r)) if (acceptors.includes(Number(m.to))) r.step(acceptAndReply(m));
    expect(r.raftLog.committed > li).toBe(wack);
    // The leader's fsync completes: now its own copy counts.
    persist(r);
    expect(r.raftLog.committed > li).toBe(acceptors.length + 1 > size / 2);
  });

  it.each([
    [[]],
    [ents([1, 2])],
    [ents([1, 1], [2, 2])],
    [ents([1, 1])],
  ] as [Entry[]][])('committing an entry commits the preceding ones, from earlier leaders too: %j', (tt) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], tt));
    r.loadState({ term: 2, vote: NONE, commit: 0 });
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: someData() }));
    for (const m of readMessages(r)) r.step(acceptAndReply(m));
    const li = tt.length;
    expect(nextEnts(r)).toEqual([...tt, entry(li + 1, 3), entry(li + 2, 3, 'some data')]);
  });

  it.each([
    [[entry(1, 1, 'some data')], 1],
    [[entry(1, 1, 'some data'), entry(2, 1, 'some data2')], 2],
    [[entry(1, 1, 'some data2'), entry(2, 1, 'some data')], 2],
    [[entry(1, 1, 'some data'), entry(2, 1, 'some data2')], 1],
  ] as [Entry[], number][])('a follower applies entries once it learns they are committed #%#', (es, commit) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeFollower(1, 2n);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 1, entries: es, commit }));
    expect(r.raftLog.committed).toBe(commit);
    expect(nextEnts(r)).toEqual(es.slice(0, commit));
  });

  it.each([
    // Matches committed entries.
    [0, 0, 1, false, 0],
    [1, 1, 1, false, 0],
    // Matches uncommitted entries.
    [2, 2, 2, false, 0],
    // Does not match an existing entry.
    [1, 2, 2, true, 2],
    // Entry does not exist.
    [3, 3, 3, true, 2],
  ])('a follower checks the preceding entry of an append: logTerm %i index %i', (term, index, windex, wreject, wrejectHint) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], ents([1, 1], [2, 2])));
    r.loadState({ term: 0, vote: NONE, commit: 1 });
    r.becomeFollower(2, 2n);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 2, logTerm: term, index }));
    expect(readMessages(r)).toEqual([msg({ type: MessageType.MsgAppResp, from: 1, to: 2, term: 2, index: windex, reject: wreject, rejectHint: wrejectHint })]);
  });

  it.each([
    [2, 2, ents([3, 3]), ents([1, 1], [2, 2], [3, 3]), ents([3, 3])],
    [1, 1, ents([2, 3], [3, 4]), ents([1, 1], [2, 3], [3, 4]), ents([2, 3], [3, 4])],
    [0, 0, ents([1, 1]), ents([1, 1], [2, 2]), []],
    [0, 0, ents([1, 3]), ents([1, 3]), ents([1, 3])],
  ] as [number, number, Entry[], Entry[], Entry[]][])('a follower deletes a conflicting suffix and appends new entries #%#', (index, term, es, wents, wunstable) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], ents([1, 1], [2, 2])));
    r.becomeFollower(2, 2n);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 2, logTerm: term, index, entries: es }));
    expect(r.raftLog.allEntries()).toEqual(wents);
    expect(r.raftLog.unstableEntries()).toEqual(wunstable);
  });

  describe('the leader brings a follower log into consistency with its own (figure 7)', () => {
    const leaderEnts = ents([1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6], [10, 6]);
    const term = 8;
    const followers: Entry[][] = [
      ents([1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6]),
      ents([1, 1], [2, 1], [3, 1], [4, 4]),
      ents([1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6], [10, 6], [11, 6]),
      ents([1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6], [10, 6], [11, 7], [12, 7]),
      ents([1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 4], [7, 4]),
      ents([1, 1], [2, 1], [3, 1], [4, 2], [5, 2], [6, 2], [7, 3], [8, 3], [9, 3], [10, 3], [11, 3]),
    ];
    it.each(followers.map((f, i) => [i, f] as [number, Entry[]]))('follower %i', (_i, f) => {
      const lead = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], leaderEnts));
      lead.loadState({ commit: lead.raftLog.lastIndex(), term, vote: NONE });
      const follower = newTestRaft(2, [1, 2, 3], 10, 1, storageWith([1, 2, 3], f));
      follower.loadState({ term: term - 1, vote: NONE, commit: 0 });
      // Three members: the follower may have the longer log, so the leader needs the third's vote.
      const n = new Network([lead, follower, nopStepper]);
      n.send(msg({ type: MessageType.MsgHup, from: 1, to: 1 }));
      n.send(msg({ type: MessageType.MsgVoteResp, from: 3, to: 1, term: term + 1 }));
      n.send(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
      expect(follower.raftLog.allEntries()).toEqual(lead.raftLog.allEntries());
      expect(follower.raftLog.committed).toBe(lead.raftLog.committed);
    });
  });
});

describe('raft paper: safety (5.4)', () => {
  it.each([
    [ents([1, 1]), 2],
    [ents([1, 1], [2, 2]), 3],
  ] as [Entry[], number][])('a vote request carries the candidate log\'s last index and term #%#', (es, wterm) => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: wterm - 1, logTerm: 0, index: 0, entries: es }));
    readMessages(r);
    for (let i = 1; i < r.electionTimeout * 2; i++) r.tickElection();
    const msgs = sortMsgs(readMessages(r));
    expect(msgs).toHaveLength(2);
    msgs.forEach((m: Message, i) => {
      expect(m.type).toBe(MessageType.MsgVote);
      expect(m.to).toBe(BigInt(i + 2));
      expect(m.term).toBe(wterm);
      expect(m.index).toBe(es[es.length - 1].index);
      expect(m.logTerm).toBe(es[es.length - 1].term);
    });
  });

  it.each([
    // Same last term.
    [ents([1, 1]), 1, 1, false],
    [ents([1, 1]), 1, 2, false],
    [ents([1, 1], [2, 1]), 1, 1, true],
    // Candidate has the higher last term.
    [ents([1, 1]), 2, 1, false],
    [ents([1, 1]), 2, 2, false],
    [ents([1, 1], [2, 1]), 2, 1, false],
    // Voter has the higher last term.
    [ents([1, 2]), 1, 1, true],
    [ents([1, 2]), 1, 2, true],
    [ents([1, 2], [2, 1]), 1, 1, true],
  ] as [Entry[], number, number, boolean][])('a voter denies its vote to a candidate with a less up-to-date log #%#', (es, logTerm, index, wreject) => {
    const r = newTestRaft(1, [1, 2], 10, 1, storageWith([1, 2], es));
    r.step(msg({ type: MessageType.MsgVote, from: 2, to: 1, term: 3, logTerm, index }));
    const msgs = readMessages(r);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].type).toBe(MessageType.MsgVoteResp);
    expect(msgs[0].reject).toBe(wreject);
  });

  it.each([
    // Entries of earlier terms are not committed by counting replicas...
    [1, 0],
    [2, 0],
    // ...an entry of the leader's term is.
    [3, 3],
  ])('a leader commits only entries of its own term by counting replicas: acknowledged %i -> commit %i', (index, wcommit) => {
    const r = newTestRaft(1, [1, 2], 10, 1, storageWith([1, 2], ents([1, 1], [2, 2])));
    r.loadState({ term: 2, vote: NONE, commit: 0 });
    // Leader at term 3.
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] }));
    persist(r);
    r.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, term: r.term, index }));
    expect(r.raftLog.committed).toBe(wcommit);
  });
});

