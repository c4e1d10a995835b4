import { Errors, EtcdError } from '../errors';
import { ConfChangeType, ErrProposalDropped, type ConfChange, type NodeId, type Status } from '../raft/core/types';
import { parsePeerUrl } from '../raft/transport/peer-transport';
import type { Log } from './bootstrap';
import { memberContext, newMemberId, parseMemberUrls, type Member, type Membership } from './membership';

// Member changes as etcd 3.4's EtcdServer does them (AddMember, RemoveMember, UpdateMember,
// PromoteMember, MoveLeader): the checks of --strict-reconfig-check on the member asked, then one conf
// change through the log, answered once this member has applied it (etcd's configure). Whether the
// change may apply is decided when it applies, the same on every member (Membership.validate).

/** etcd's HealthInterval: peers must have been connected this long for a change to be safe. */
export const HEALTH_INTERVAL_MS = 5000;
/** etcd's readyPercent: a learner is promoted once its log holds 90% of the leader's. */
const READY_FRACTION = 0.9;

export interface ReconfigurationHost {
  readonly memberId: bigint;
  readonly membership: Membership;
  readonly strictReconfigCheck: boolean;
  readonly requestTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly log: Log;
  /** The leader's ID (0n: none), and whether this member is it. */
  lead(): bigint;
  /** Raft's status (progress of every member, on the leader). */
  raftStatus(): Status;
  /** When the peer's connection came up (undefined: not connected). */
  connectedSince(id: bigint): number | undefined;
  /** Proposes a conf change (throws the core's ErrProposalDropped when no leader can take it). */
  proposeConfChange(cc: ConfChange): void;
  transferLeader(to: bigint): void;
  /** A new request ID for a conf change (this member's prefix, so it recognises its own changes). */
  nextId(): bigint;
  /** Asks the leader to promote (only the leader knows whether a learner is in sync). */
  forwardPromote(leader: bigint, id: bigint): Promise<Member[]>;
  /** Whether the member stopped (no more answers will come). */
  stopped(): boolean;
}

interface Pending {
  resolve: (members: Member[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Reconfiguration {
  private readonly pending = new Map<bigint, Pending>();

  constructor(private readonly h: ReconfigurationHost) {}

  /** MemberAdd: a new member (ID from its URLs and the time, as etcd's NewMember) as voter or learner. */
  async add(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    this.assertInCluster();
    const urls = dialableUrls(peerUrls);
    if (!urls) throw Errors.memberBadUrls;
    const member: Member = { id: newMemberId(urls, Date.now()), name: '', peerUrls: urls, clientUrls: [], isLearner };
    if (this.h.strictReconfigCheck) {
      // The quorum check is for voters; the connectivity check is for learners too (etcd's mayAddMember).
      if (!isLearner && !readyToAddVoter(this.h.membership)) throw this.refuse('member add', Errors.memberNotEnoughStarted);
      if (!this.connectedToAll(this.h.membership.list().filter((m) => !m.isLearner))) throw this.refuse('member add', Errors.unhealthy);
    }
    const type = isLearner ? ConfChangeType.ADD_LEARNER_NODE : ConfChangeType.ADD_NODE;
    const members = await this.configure({ id: 0n, type, nodeId: member.id, context: memberContext(member) });
    return { member, members };
  }

  /** MemberRemove. */
  async remove(id: bigint): Promise<Member[]> {
    this.assertInCluster();
    if (this.h.strictReconfigCheck) this.mayRemove(id);
    return this.configure({ id: 0n, type: ConfChangeType.REMOVE_NODE, nodeId: id, context: Buffer.alloc(0) });
  }

  /** MemberUpdate: new peer URLs (checked as MemberAdd's: etcd 3.4 does not, and crashes on a bad one). */
  async update(id: bigint, peerUrls: string[]): Promise<Member[]> {
    this.assertInCluster();
    const urls = dialableUrls(peerUrls);
    if (!urls) throw Errors.memberBadUrls;
    const m: Member = { id, name: '', peerUrls: urls, clientUrls: [], isLearner: false };
    return this.configure({ id: 0n, type: ConfChangeType.UPDATE_NODE, nodeId: id, context: memberContext(m) });
  }

  /** MemberPromote: on the leader (which knows whether the learner is in sync); a follower asks it. */
  async promote(id: bigint): Promise<Member[]> {
    this.assertInCluster();
    if (this.h.lead() === this.h.memberId) return this.promoteHere(id);
    const deadline = Date.now() + this.h.requestTimeoutMs;
    while (Date.now() < deadline && !this.h.stopped()) {
      const leader = this.h.lead();
      if (leader === 0n || leader === this.h.memberId) {
        if (leader === this.h.memberId) return this.promoteHere(id);
        await sleep(50);
        continue;
      }
      try {
        return await this.h.forwardPromote(leader, id);
      } catch (err) {
        // The leader's verdict is final; a lost connection or a leader change is tried again.
        if (err === Errors.learnerNotReady || err === Errors.memberNotFound || err === Errors.memberNotLearner) throw err;
        if (err instanceof EtcdError && err !== Errors.notLeader) throw err;
        await sleep(50);
      }
    }
    throw this.h.stopped() ? Errors.stopped : Errors.timeout;
  }

  /** The leader's side of a promotion (also what a forwarded request runs). */
  async promoteHere(id: bigint): Promise<Member[]> {
    this.learnerReady(id);
    if (this.h.strictReconfigCheck && !readyToPromote(this.h.membership)) throw this.refuse('member promote', Errors.memberNotEnoughStarted);
    const m: Member = { id, name: '', peerUrls: [], clientUrls: [], isLearner: false };
    return this.configure({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: id, context: memberContext(m, true) });
  }

  /**
   * MoveLeader: the leader brings the transferee's log up to date and hands over (raft's TimeoutNow);
   * answers once the transferee leads, or etcd's "leader transfer took too long" after the timeout.
   */
  async moveLeader(transferee: bigint): Promise<void> {
    if (this.h.lead() !== this.h.memberId) throw Errors.notLeader;
    const m = this.h.membership.get(transferee);
    if (!m || m.isLearner) throw Errors.badLeaderTransferee;
    const from = this.h.lead();
    const start = Date.now();
    this.h.log('info', 'leadership transfer starting', { 'local-member-id': hex(this.h.memberId), 'current-leader-member-id': hex(from), 'transferee-member-id': hex(transferee) });
    this.h.transferLeader(transferee);
    while (this.h.lead() !== transferee) {
      if (this.h.stopped()) throw Errors.stopped;
      if (Date.now() - start >= this.h.requestTimeoutMs) throw Errors.timeoutLeaderTransfer;
      await sleep(this.h.heartbeatMs);
    }
    this.h.log('info', 'leadership transfer finished', { 'local-member-id': hex(this.h.memberId), 'old-leader-member-id': hex(from), 'new-leader-member-id': hex(transferee), took: `${Date.now() - start}ms` });
  }

  /**
   * The conf change cc (committed at index) was applied here, or refused with err: answers the member's
   * own request, with the member list after it.
   */
  applied(cc: ConfChange, err: EtcdError | undefined): void {
    const p = this.pending.get(cc.id);
    if (!p) return;
    this.pending.delete(cc.id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else {
      this.h.log('info', 'applied a configuration change through raft', { 'local-member-id': hex(this.h.memberId), 'raft-conf-change': confChangeName(cc.type), 'raft-conf-change-node-id': hex(cc.nodeId) });
      p.resolve(this.h.membership.list());
    }
  }

  /** Fails what waits (the member stops). */
  close(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  /**
   * One conf change through the log, answered when applied here. A change proposed while another is
   * still unapplied becomes an empty entry on the leader (raft's one-at-a-time rule) and times out,
   * as in etcd 3.4. With no leader, the proposal is retried until the request timeout.
   */
  private configure(change: ConfChange): Promise<Member[]> {
    const cc = { ...change, id: this.h.nextId() };
    const start = Date.now();
    return new Promise<Member[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(cc.id);
        reject(Errors.timeout);
      }, this.h.requestTimeoutMs);
      this.pending.set(cc.id, { resolve, reject, timer });
      const attempt = () => {
        if (!this.pending.has(cc.id)) return;
        if (this.h.stopped()) return this.fail(cc.id, Errors.stopped);
        try {
          if (this.h.lead() === 0n) throw ErrProposalDropped;
          this.h.proposeConfChange(cc);
        } catch (err) {
          if (err !== ErrProposalDropped) return this.fail(cc.id, err as Error);
          if (Date.now() - start < this.h.requestTimeoutMs) setTimeout(attempt, 50);
        }
      };
      attempt();
    });
  }

  /**
   * A member not (yet) in its own member list cannot judge a change: one joining that has not applied
   * its own addition, or a data dir from before Plinth had clusters (whose log never added it).
   */
  private assertInCluster(): void {
    if (!this.h.membership.local) throw Errors.notCapable;
  }

  private fail(id: bigint, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(err);
  }

  /** etcd's mayRemoveMember: no quorum of started voters left, or an active quorum broken. */
  private mayRemove(id: bigint): void {
    const target = this.h.membership.get(id);
    if (target?.isLearner) return;
    if (!readyToRemoveVoter(this.h.membership, id)) throw this.refuse('member remove', Errors.memberNotEnoughStarted);
    // A member that is down is safe to remove: it is not part of the active quorum.
    if (id !== this.h.memberId && this.h.connectedSince(id) === undefined) return;
    const voters = this.h.membership.list().filter((m) => !m.isLearner);
    const active = this.connectedCount(voters);
    if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw this.refuse('member remove', Errors.unhealthy);
  }

  /** etcd's isLearnerReady: the learner's match within 90% of the leader's (only the leader knows). */
  private learnerReady(id: bigint): void {
    const st = this.h.raftStatus();
    if (!st.progress) throw Errors.notLeader;
    const pr = st.progress.get(id);
    if (!pr) return; // not a member: the apply step answers "member not found"
    const leaderMatch = st.progress.get(st.id)?.match ?? 0;
    if (pr.match < leaderMatch * READY_FRACTION) throw Errors.learnerNotReady;
  }

  /** Voters connected to this member for at least HEALTH_INTERVAL_MS (itself included). */
  private connectedCount(members: Member[]): number {
    const since = Date.now() - HEALTH_INTERVAL_MS;
    return members.filter((m) => {
      if (m.id === this.h.memberId) return true;
      const t = this.h.connectedSince(m.id);
      return t !== undefined && t < since;
    }).length;
  }

  private connectedToAll(members: Member[]): boolean {
    return this.connectedCount(members) === members.length;
  }

  private refuse(what: string, err: EtcdError): EtcdError {
    this.h.log('warn', `rejecting ${what} request`, { 'local-member-id': hex(this.h.memberId), error: err.message });
    return err;
  }
}

/**
 * A new member's peer URLs: etcd's rules (types.NewURLs), and only what Plinth's peer transport can dial
 * (http:// or https://host:port; no unix sockets): a member nobody can reach is refused with etcd's "given
 * member URLs are invalid" rather than added.
 */
export function dialableUrls(urls: string[]): string[] | undefined {
  const parsed = parseMemberUrls(urls);
  if (!parsed) return undefined;
  try {
    for (const u of parsed) parsePeerUrl(u);
  } catch {
    return undefined;
  }
  return parsed;
}

/** etcd's IsReadyToAddVotingMember: a quorum of the grown cluster has started (1 of 1 may add one). */
export function readyToAddVoter(ms: Membership): boolean {
  const voters = ms.list().filter((m) => !m.isLearner);
  const nstarted = ms.startedVoters().length;
  const nmembers = voters.length + 1;
  if (nstarted === 1 && nmembers === 2) return true;
  return nstarted >= Math.floor(nmembers / 2) + 1;
}

/** etcd's IsReadyToRemoveVotingMember: a quorum of the rest has started. */
export function readyToRemoveVoter(ms: Membership, id: bigint): boolean {
  const rest = ms.list().filter((m) => !m.isLearner && m.id !== id);
  const nstarted = rest.filter((m) => m.name !== '').length;
  return nstarted >= Math.floor(rest.length / 2) + 1;
}

/** etcd's IsReadyToPromoteMember: the learner counts as started in the grown cluster. */
export function readyToPromote(ms: Membership): boolean {
  const nmembers = ms.list().filter((m) => !m.isLearner).length + 1;
  const nstarted = ms.startedVoters().length + 1;
  return nstarted >= Math.floor(nmembers / 2) + 1;
}

export function confChangeName(t: ConfChangeType): string {
  return ['ConfChangeAddNode', 'ConfChangeRemoveNode', 'ConfChangeUpdateNode', 'ConfChangeAddLearnerNode'][t] ?? String(t);
}

const hex = (id: NodeId): string => BigInt.asUintN(64, id).toString(16);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
