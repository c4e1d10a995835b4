// The seeded simulator over many seeds (see simulator.ts). Environment:
//   RAFT_SIM_SEEDS=n       seeds of 3 members (default 2000; 5 members get half as many)
//   RAFT_SIM_CONF_SEEDS=n  seeds of 3 members with member changes (default 1000; 5 members half as many)
//   RAFT_SIM_SEED=s        replay one seed (with RAFT_SIM_MEMBERS=3|5, and RAFT_SIM_CONF=1 for a run
//                          with member changes, RAFT_SIM_STORAGE_SNAPSHOTS=1 to send the storage's
//                          snapshots as they are: see SimOptions), printing its whole trace
//   RAFT_SIM_STEPS=n       fault-phase steps per seed (default 500)
import { describe, expect, it } from 'vitest';
import { majorityCommittedIndex, VoteResult } from '../../../src/raft/core/progress';
import { Raft } from '../../../src/raft/core/raft';
import { RawNode } from '../../../src/raft/core/raw-node';
import { ConfChangeType, type ConfChange, type ConfState, type Entry, type Message, type MessageType, type RaftConfig } from '../../../src/raft/core/types';
import { MAX_STATS, SafetyViolation, Simulator, emptyStats, type SimOptions, type SimStats } from './simulator';

const SEEDS = Number(process.env.RAFT_SIM_SEEDS ?? 2000);
const CONF_SEEDS = Number(process.env.RAFT_SIM_CONF_SEEDS ?? 1000);
const STEPS = Number(process.env.RAFT_SIM_STEPS ?? 500);
const REPLAY = process.env.RAFT_SIM_SEED;
const COMPACT_EVERY = 8;

function replayCommand(opts: SimOptions): string {
  return `RAFT_SIM_SEED=${opts.seed} RAFT_SIM_MEMBERS=${opts.members}${opts.confChanges ? ' RAFT_SIM_CONF=1' : ''}${opts.storageSnapshots ? ' RAFT_SIM_STORAGE_SNAPSHOTS=1' : ''}${STEPS !== 500 ? ` RAFT_SIM_STEPS=${STEPS}` : ''} npx vitest run test/raft/core/simulator.test.ts`;
}

/** Runs one seed; a failure names the seed, how to replay it and the last steps. */
function runSeed(opts: SimOptions): Simulator {
  const sim = new Simulator(opts);
  try {
    sim.run();
  } catch (err) {
    const what = err instanceof SafetyViolation ? err.message : (err as Error).stack;
    throw new Error(`simulator seed ${opts.seed} (${opts.members} members${opts.confChanges ? ', member changes' : ''}) failed: ${what}\n`
      + `replay: ${replayCommand(opts)}\n`
      + `last ${sim.lastTrace().length} steps:\n${sim.lastTrace().join('\n')}`);
  }
  return sim;
}

function runSeeds(members: number, count: number, confChanges = false): { stats: SimStats; ms: number } {
  const total = emptyStats();
  const t0 = Date.now();
  for (let seed = 1; seed <= count; seed++) {
    const sim = runSeed({ seed, members, steps: STEPS, compactEvery: COMPACT_EVERY, confChanges });
    for (const k of Object.keys(total) as (keyof SimStats)[]) {
      total[k] = MAX_STATS.includes(k) ? Math.max(total[k], sim.stats[k]) : total[k] + sim.stats[k];
    }
  }
  return { stats: total, ms: Date.now() - t0 };
}

function report(members: number, count: number, r: { stats: SimStats; ms: number }): void {
  const s = r.stats;
  console.log(`raft simulator: ${count} seeds x ${members} members, ${STEPS} steps each, ${r.ms} ms: `
    + `${s.delivered} messages delivered, ${s.dropped} dropped, ${s.duplicated} duplicated; ${s.elections} leaders elected `
    + `(highest term ${s.maxTerm}); ${s.committed} entries committed of ${s.proposals} proposed; ${s.crashes} crashes `
    + `(${s.midReadyCrashes} mid-Ready); ${s.snapshotsSent} snapshots sent, ${s.snapshotsInstalled} installed; `
    + `${s.readsAnswered} of ${s.readsIssued} reads answered; liveness within ${s.livenessTicks} ticks at most`);
}

function reportConf(members: number, count: number, r: { stats: SimStats; ms: number }): void {
  const s = r.stats;
  console.log(`raft simulator, member changes: ${count} seeds x ${members} members, ${STEPS} steps each, ${r.ms} ms: `
    + `${s.confProposed} conf changes proposed, ${s.confApplied} applied (${s.confRefused} refused by the servers): `
    + `${s.votersAdded} voters and ${s.learnersAdded} learners added, ${s.promoted} learners promoted, ${s.removed} members removed `
    + `(${s.leadersRemoved} of them the leader), ${s.membersStopped} stopped; new members caught up from the log ${s.joinedByLog} times, `
    + `from a snapshot ${s.joinedBySnapshot}; up to ${s.maxVoters} voters, ${s.maxMembers} members in a run; ${s.elections} leaders elected; `
    + `${s.committed} entries committed; ${s.snapshotsInstalled} snapshots installed; liveness within ${s.livenessTicks} ticks at most`
    + `${s.termRaceStalls > 0 ? `, ${s.termRaceStalls} liveness phases stalled on a race of terms (pre-vote off; tolerated)` : ''}`);
}

describe.skipIf(REPLAY !== undefined)('raft simulator', () => {
  it(`keeps raft's safety properties, and recovers, over ${SEEDS} seeds of 3 members`, () => {
    const r = runSeeds(3, SEEDS);
    report(3, SEEDS, r);
    // The runs did exercise what they check.
    expect(r.stats.elections).toBeGreaterThan(SEEDS);
    expect(r.stats.snapshotsInstalled).toBeGreaterThan(SEEDS / 10);
    expect(r.stats.readsAnswered).toBeGreaterThan(SEEDS);
    expect(r.stats.midReadyCrashes).toBeGreaterThan(0);
  }, 300_000);

  it(`keeps raft's safety properties, and recovers, over ${Math.ceil(SEEDS / 2)} seeds of 5 members`, () => {
    const n = Math.ceil(SEEDS / 2);
    const r = runSeeds(5, n);
    report(5, n, r);
    expect(r.stats.elections).toBeGreaterThan(n);
    expect(r.stats.snapshotsInstalled).toBeGreaterThan(n / 10);
  }, 300_000);
});

describe.skipIf(REPLAY !== undefined)('raft simulator, member changes', () => {
  // Members added as voters and learners (new members start empty and catch up), learners
  // promoted, members removed, the leader too, amid the same faults (issue #14).
  it(`keeps raft's safety properties through member changes, and recovers in the configuration reached, over ${CONF_SEEDS} seeds of 3 members and ${Math.ceil(CONF_SEEDS / 2)} of 5`, () => {
    const total = emptyStats();
    for (const [members, n] of [[3, CONF_SEEDS], [5, Math.ceil(CONF_SEEDS / 2)]]) {
      const r = runSeeds(members, n, true);
      reportConf(members, n, r);
      for (const k of Object.keys(total) as (keyof SimStats)[]) total[k] = MAX_STATS.includes(k) ? Math.max(total[k], r.stats[k]) : total[k] + r.stats[k];
    }
    // The runs did exercise each kind of change, and both ways a new member catches up.
    const runs = CONF_SEEDS + Math.ceil(CONF_SEEDS / 2);
    expect(total.votersAdded).toBeGreaterThan(runs / 10);
    expect(total.learnersAdded).toBeGreaterThan(runs / 10);
    expect(total.promoted).toBeGreaterThan(runs / 20);
    expect(total.removed).toBeGreaterThan(runs / 10);
    expect(total.leadersRemoved).toBeGreaterThan(runs / 20);
    expect(total.membersStopped).toBeGreaterThan(runs / 10);
    expect(total.joinedByLog).toBeGreaterThan(0);
    expect(total.joinedBySnapshot).toBeGreaterThan(0);
    expect(total.maxVoters).toBeGreaterThan(5);
    // The tolerated stall stays rare.
    expect(total.termRaceStalls).toBeLessThan(runs / 100);
  }, 300_000);
});

describe.skipIf(REPLAY !== undefined)('raft simulator, the driver\'s policy', () => {
  // The driver sends all of a leader's Ready messages before its fsync, not just maySendBeforePersist's.
  it('a leader sending every message of its Ready before persisting keeps the properties', () => {
    for (const members of [3, 5]) {
      for (let seed = 1; seed <= 150; seed++) runSeed({ seed, members, steps: STEPS, compactEvery: COMPACT_EVERY, leaderSendsAllEarly: true });
    }
  }, 120_000);
});

describe.runIf(REPLAY !== undefined)('raft simulator replay', () => {
  it(`replays seed ${REPLAY}`, () => {
    const members = Number(process.env.RAFT_SIM_MEMBERS ?? 3);
    const confChanges = process.env.RAFT_SIM_CONF === '1';
    const storageSnapshots = process.env.RAFT_SIM_STORAGE_SNAPSHOTS === '1';
    const sim = new Simulator({ seed: Number(REPLAY), members, steps: STEPS, compactEvery: COMPACT_EVERY, confChanges, storageSnapshots, traceLimit: 1_000_000 });
    try {
      sim.run();
    } finally {
      console.log(sim.lastTrace().join('\n'));
      console.log(sim.stats);
    }
  }, 300_000);
});

// ---- The checker can fail: broken cores, reachable only from tests ----
//
// RawNode makes its Raft through a protected factory (createRaft) and Raft decides votes and the
// quorum's commit index in protected methods (canVote, candidateLogUpToDate, quorumCommitIndex). Nothing in RaftConfig
// reaches them: only a subclass, which only these tests declare, changes them.

/** Votes for any candidate with an up-to-date log, even after voting for another in the same term. */
class DoubleVotingRaft extends Raft {
  protected override canVote(_m: Message): boolean {
    return true;
  }
}

/** Votes for candidates whose log is behind its own. */
class StaleLogVotingRaft extends Raft {
  protected override candidateLogUpToDate(_m: Message): boolean {
    return true;
  }
}

/** Commits what any single voter (typically the leader itself) has: a minority. */
class MinorityCommitRaft extends Raft {
  protected override quorumCommitIndex(): number {
    let max = 0;
    for (const id of this.prs.voters) max = Math.max(max, this.prs.progress.get(id)?.match ?? 0);
    return max;
  }
}

/** etcd 3.4's accounting: the leader counts its own entries at append time, before they are durable. */
class AppendTimeSelfAccountingRaft extends Raft {
  override appendEntry(es: Entry[]): boolean {
    if (!super.appendEntry(es)) return false;
    this.prs.progress.get(this.id)?.maybeUpdate(this.raftLog.lastIndex());
    this.maybeCommit();
    return true;
  }
}

// Broken in member changes (the simulator's checks of them):

/** Counts a learner's acknowledgements toward commit, as if learners were voters. */
class LearnerAckCommitRaft extends Raft {
  protected override quorumCommitIndex(): number {
    const members = new Set([...this.prs.voters, ...this.prs.learners]);
    return majorityCommittedIndex(members, (id) => this.prs.progress.get(id)?.match);
  }
}

/** A learner that campaigns when it stops hearing from a leader, as voters do. */
class CampaigningLearnerRaft extends Raft {
  override promotable(): boolean {
    return this.prs.progress.has(this.id);
  }
}

/** Makes an added learner a voter: its configuration is no longer the one the servers agreed on. */
class LearnersAsVotersRaft extends Raft {
  override applyConfChange(cc: ConfChange): ConfState {
    return super.applyConfChange(cc.type === ConfChangeType.ADD_LEARNER_NODE ? { ...cc, type: ConfChangeType.ADD_NODE } : cc);
  }
}

/** Wins an election one vote short of a majority of its voters. */
class ShortQuorumRaft extends Raft {
  override poll(id: bigint, t: MessageType, v: boolean): VoteResult {
    const res = super.poll(id, t, v);
    if (res !== VoteResult.Pending) return res;
    return this.prs.tallyVotes().granted >= this.prs.voters.size >> 1 ? VoteResult.Won : res;
  }
}

function nodeFactory(R: new (cfg: RaftConfig) => Raft): (cfg: RaftConfig) => RawNode {
  class BrokenRawNode extends RawNode {
    protected override createRaft(cfg: RaftConfig): Raft {
      return new R(cfg);
    }
  }
  return (cfg) => new BrokenRawNode(cfg);
}

/** The first seed (up to maxSeeds) whose run the checker rejects, and why. */
function firstViolation(makeNode: (cfg: RaftConfig) => RawNode, members: number, maxSeeds: number, confChanges = false): { seed: number; message: string } | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const sim = new Simulator({ seed, members, steps: STEPS, compactEvery: COMPACT_EVERY, makeNode, confChanges });
    try {
      sim.run();
    } catch (err) {
      if (!(err instanceof SafetyViolation)) throw err;
      console.log(`broken core caught at seed ${seed} (${members} members${confChanges ? ', member changes' : ''}): ${err.message}`);
      return { seed, message: err.message };
    }
  }
  return undefined;
}

describe.skipIf(REPLAY !== undefined)('raft simulator catches broken cores', () => {
  it('a member that votes twice in a term: two leaders in one term', () => {
    const v = firstViolation(nodeFactory(DoubleVotingRaft), 3, 300);
    expect(v, 'no seed caught the double vote').toBeDefined();
    expect(v!.message).toMatch(/election safety: members \d and \d were both leader of term \d+/);
  }, 120_000);

  it('members that vote for candidates with stale logs: a leader without committed entries', () => {
    const v = firstViolation(nodeFactory(StaleLogVotingRaft), 3, 300);
    expect(v, 'no seed caught the stale-log votes').toBeDefined();
    expect(v!.message).toMatch(/leader completeness|state machine safety|log matching|committed an entry of term/);
  }, 120_000);

  it('a leader that commits on a minority', () => {
    const v = firstViolation(nodeFactory(MinorityCommitRaft), 5, 300);
    expect(v, 'no seed caught the minority commit').toBeDefined();
    expect(v!.message).toMatch(/durability: member \d committed \d+ .* but only [12] members have it on disk|leader completeness|state machine safety/);
  }, 120_000);

  it("etcd 3.4's append-time self-accounting commits entries not yet on a quorum's disks", () => {
    const v = firstViolation(nodeFactory(AppendTimeSelfAccountingRaft), 3, 300);
    expect(v, 'no seed caught the append-time accounting').toBeDefined();
    expect(v!.message).toMatch(/durability: member \d committed \d+ .* but only 1 members have it on disk/);
  }, 120_000);

  it('the correct core passes the same seeds', () => {
    expect(firstViolation((cfg) => new RawNode(cfg), 3, 50)).toBeUndefined();
  }, 120_000);
});

describe.skipIf(REPLAY !== undefined)('raft simulator catches broken cores, member changes', () => {
  it("a leader that counts a learner's acknowledgements toward commit", () => {
    const v = firstViolation(nodeFactory(LearnerAckCommitRaft), 3, 300, true);
    expect(v, 'no seed caught the learner counted in the commit quorum').toBeDefined();
    expect(v!.message).toMatch(/durability: member \d+ committed \d+ .* but only \d+ members have it on disk \(of voters|leader completeness|state machine safety/);
  }, 120_000);

  it('a learner that campaigns', () => {
    const v = firstViolation(nodeFactory(CampaigningLearnerRaft), 3, 300, true);
    expect(v, 'no seed caught the campaigning learner').toBeDefined();
    expect(v!.message).toMatch(/learner \d+ became State(Pre)?Candidate/);
  }, 120_000);

  it('a core that applies an added learner as a voter', () => {
    const v = firstViolation(nodeFactory(LearnersAsVotersRaft), 3, 300, true);
    expect(v, 'no seed caught the learner made a voter').toBeDefined();
    expect(v!.message).toMatch(/configuration: member \d+ applied \d+: raft has voters \{[\d,]+\} learners \{\}, its server's membership voters \{[\d,]+\} learners \{\d+\}/);
  }, 120_000);

  it('a candidate that wins one vote short of a majority', () => {
    const v = firstViolation(nodeFactory(ShortQuorumRaft), 5, 300, true);
    expect(v, 'no seed caught the short quorum').toBeDefined();
    expect(v!.message).toMatch(/election quorum: member \d+ became leader of term \d+ with the votes of \{[\d,]*\} of its voters/);
  }, 120_000);

  it('the correct core passes the same seeds', () => {
    expect(firstViolation((cfg) => new RawNode(cfg), 3, 50, true)).toBeUndefined();
  }, 120_000);
});
