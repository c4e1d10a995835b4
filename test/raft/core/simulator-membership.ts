// The simulator's model of a member's server for configuration changes (see simulator.ts): the
// membership it keeps beside the state machine, as etcd's RaftCluster does (members, learners, and
// the ids removed for good), what it refuses to apply, and the sensible changes an operator asks for
// (etcdctl member add / add --learner / promote / remove, the leader included).
//
// etcd checks a committed conf change against its membership when it applies it, and hands a refused
// one to raft as a change of no member (ConfChange.NodeID = 0), which changes nothing. Every member
// applies the same log, so every member refuses the same changes. This model refuses what etcd does
// (a voter added twice, a learner added over an existing member, an unknown member removed, a
// removed id added back) and also what would take the cluster outside what the simulator keeps it
// in: the size bounds, and removing a voter from two. The last one is etcd's two-member caveat, a
// liveness hazard rather than a safety one: the removed member stops soon after applying its
// removal, and if the survivor never heard that the removal committed, its configuration still
// needs the removed member's vote, for ever (with a minimum of one voter, about 0.7% of 3-member
// seeds end so, even with the removed leader handing leadership over first).
//
// Also here: the record of configurations the agreement check compares members against
// (ConfHistory), and the one liveness stall the simulator tolerates (termRaceStall).
import type { Raft } from '../../../src/raft/core/raft';
import { ConfChangeType, type ConfChange, type ConfState, type NodeId } from '../../../src/raft/core/types';
import { compareNodeIds } from '../../../src/raft/core/util';

/** A member's view of the cluster's membership, as of its applied index (persisted with snapshots). */
export interface Membership {
  voters: Set<NodeId>;
  learners: Set<NodeId>;
  /** Ids removed for good: never added back, and their messages refused. */
  removed: Set<NodeId>;
}

export interface MembershipBounds {
  minVoters: number;
  maxVoters: number;
  maxLearners: number;
}

export function newMembership(voters: NodeId[] = []): Membership {
  return { voters: new Set(voters), learners: new Set(), removed: new Set() };
}

export function cloneMembership(m: Membership): Membership {
  return { voters: new Set(m.voters), learners: new Set(m.learners), removed: new Set(m.removed) };
}

function idList(ids: Iterable<NodeId>): string {
  return [...ids].sort(compareNodeIds).join(',');
}

/** Voters and learners, sorted: comparable across members and with raft's ConfState. */
export function confStateKey(cs: ConfState): string {
  return `voters {${idList(cs.voters)}} learners {${idList(cs.learners)}}`;
}

export function membershipKey(m: Membership): string {
  return `voters {${idList(m.voters)}} learners {${idList(m.learners)}}`;
}

export function describeConfChange(cc: ConfChange): string {
  const what = cc.type === ConfChangeType.ADD_NODE ? 'add voter'
    : cc.type === ConfChangeType.ADD_LEARNER_NODE ? 'add learner'
      : cc.type === ConfChangeType.REMOVE_NODE ? 'remove' : 'update';
  return `${what} ${cc.nodeId} (${cc.context.toString()})`;
}

/** Why the server refuses to apply cc, or undefined when it applies it. */
export function refuseConfChange(m: Membership, cc: ConfChange, b: MembershipBounds): string | undefined {
  const id = cc.nodeId;
  const isMember = m.voters.has(id) || m.learners.has(id);
  switch (cc.type) {
    case ConfChangeType.ADD_NODE:
      // An existing learner: a promotion.
      if (m.removed.has(id)) return 'the id was removed';
      if (m.voters.has(id)) return 'already a voter';
      if (m.voters.size >= b.maxVoters) return `${b.maxVoters} voters already`;
      return undefined;
    case ConfChangeType.ADD_LEARNER_NODE:
      if (m.removed.has(id)) return 'the id was removed';
      if (isMember) return 'already a member';
      if (m.learners.size >= b.maxLearners) return `${b.maxLearners} learner(s) already`;
      return undefined;
    case ConfChangeType.REMOVE_NODE:
      if (!isMember) return 'not a member';
      if (m.voters.has(id) && m.voters.size <= b.minVoters) return `only ${m.voters.size} voters`;
      return undefined;
    default:
      return isMember ? undefined : 'not a member';
  }
}

/** The membership after an accepted change. */
export function applyToMembership(m: Membership, cc: ConfChange): void {
  const id = cc.nodeId;
  switch (cc.type) {
    case ConfChangeType.ADD_NODE:
      m.learners.delete(id);
      m.voters.add(id);
      break;
    case ConfChangeType.ADD_LEARNER_NODE:
      m.learners.add(id);
      break;
    case ConfChangeType.REMOVE_NODE:
      m.voters.delete(id);
      m.learners.delete(id);
      m.removed.add(id);
      break;
  }
}

export type ConfChangeKind = 'addVoter' | 'addLearner' | 'promote' | 'removeVoter' | 'removeLearner' | 'removeLeader';

/**
 * A change an operator would ask for, given the membership a member sees and the leader it knows
 * (its view may be stale: the server refuses what no longer fits when it applies it). The cluster
 * drifts around its initial size: growing is likelier below it, shrinking above it.
 */
export function pickConfChange(
  view: Membership, lead: NodeId, initialVoters: number, b: MembershipBounds,
  rand: () => number, newId: () => NodeId, seq: number,
): { kind: ConfChangeKind; cc: ConfChange } | undefined {
  if (view.voters.size === 0) return undefined;
  const voters = [...view.voters].sort(compareNodeIds);
  const learners = [...view.learners].sort(compareNodeIds);
  const n = voters.length;
  const options: [ConfChangeKind, number][] = [];
  if (learners.length > 0) options.push(['promote', n < b.maxVoters ? 3 : 0], ['removeLearner', 1]);
  if (learners.length < b.maxLearners) options.push(['addLearner', 2]);
  if (n < b.maxVoters) options.push(['addVoter', n < initialVoters ? 3 : 1]);
  if (n > b.minVoters) {
    options.push(['removeVoter', n > initialVoters ? 3 : 1]);
    if (view.voters.has(lead)) options.push(['removeLeader', n > initialVoters ? 2 : 1]);
  }
  const total = options.reduce((s, [, w]) => s + w, 0);
  if (total === 0) return undefined;
  let x = rand() * total;
  let kind: ConfChangeKind = options[0][0];
  for (const [k, w] of options) {
    kind = k;
    if ((x -= w) < 0) break;
  }
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  let type: ConfChangeType;
  let nodeId: NodeId;
  switch (kind) {
    case 'addVoter': type = ConfChangeType.ADD_NODE; nodeId = newId(); break;
    case 'addLearner': type = ConfChangeType.ADD_LEARNER_NODE; nodeId = newId(); break;
    case 'promote': type = ConfChangeType.ADD_NODE; nodeId = pick(learners); break;
    case 'removeLearner': type = ConfChangeType.REMOVE_NODE; nodeId = pick(learners); break;
    case 'removeLeader': type = ConfChangeType.REMOVE_NODE; nodeId = lead; break;
    case 'removeVoter': {
      const others = voters.filter((id) => id !== lead);
      type = ConfChangeType.REMOVE_NODE;
      nodeId = pick(others.length > 0 ? others : voters);
      break;
    }
  }
  // The context is unique, so every proposal is a distinct entry (etcd puts the member's JSON there).
  return { kind, cc: { id: BigInt(seq), type, nodeId, context: Buffer.from(`${kind} #${seq}`) } };
}

/**
 * The configuration after each conf change entry, in index order, as the first member to apply it
 * had it: every member must have the same after the same entry. It starts after the bootstrap
 * entries, which differ: the initial members start with all of them applied, a member added later
 * applies them one by one.
 */
export class ConfHistory {
  private readonly h: { index: number; key: string }[];

  constructor(bootstrapIndex: number, key: string) {
    this.h = [{ index: bootstrapIndex, key }];
  }

  /**
   * A member has configuration `key` after applying the conf change at `index` (applied), or after
   * installing a snapshot at `index`. first: it is the first member to apply that entry.
   */
  check(index: number, key: string, applied: boolean): { first: boolean; mismatch?: string } {
    const h = this.h;
    if (index < h[0].index) return { first: false };
    if (applied && index > h[h.length - 1].index) {
      h.push({ index, key });
      return { first: true };
    }
    // The configuration in effect at `index`: that of the last conf change at or before it.
    let j = h.length - 1;
    while (h[j].index > index) j--;
    if (applied && h[j].index !== index) return { first: false, mismatch: 'a conf change where the members before it applied none' };
    if (h[j].key !== key) return { first: false, mismatch: `has ${key}, another member had ${h[j].key} there` };
    return { first: false };
  }
}

/**
 * The one stall the simulator's liveness check tolerates, a liveness hazard of raft without pre-vote
 * that etcd 3.4 (pre-vote off by default) shares; it is not a safety matter. Member b could lead but
 * needs the vote of a, whose term ran ahead (it campaigned alone) and whose configuration is older
 * than b's: a does not know b, so it never sends b its term, and it ignores b's vote requests, which
 * carry a lower term (raft ignores a lower-term MsgVote without answering). The election waits on a
 * race of terms that b wins only by chance. (With pre-vote, a answers b's lower-term pre-vote with
 * its term, and b catches up.) Returns a description of the stall, if the members are in one.
 */
export function termRaceStall(
  members: { id: NodeId; rn?: { raft: Raft } }[], all: { id: NodeId; rn?: { raft: Raft }; confState: ConfState }[],
): string | undefined {
  for (const b of members) {
    const br = b.rn?.raft;
    if (!br) continue;
    for (const a of all) {
      const ar = a.rn?.raft;
      if (!ar || a === b || ar.term <= br.term || ar.prs.progress.has(b.id) || !br.prs.voters.has(a.id)) continue;
      if (!ar.raftLog.isUpToDate(br.raftLog.lastIndex(), br.raftLog.lastTerm())) continue;
      return `member ${b.id} (term ${br.term}) needs the vote of ${a.id} (term ${ar.term}), whose configuration ${confStateKey(a.confState)} lacks ${b.id}`;
    }
  }
  return undefined;
}
