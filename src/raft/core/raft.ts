// The raft state machine (etcd-io/raft 3.4's raft.go): roles, elections, terms, replication and
// commit. The per-role message handling is in raft-step.ts. Pure: no I/O, no clock (time is
// tick()), no randomness but cfg.random.
//
// Deliberate differences from etcd 3.4 (Plinth's DESIGN):
// - The leader's own progress (match) advances only when the driver reports its entries durable
//   (stableTo via advance()), not when it appends them: an entry commits once a quorum, the leader
//   counted only after its own fsync, has it on disk.
// - Only persisted entries are handed out for applying (see RaftLog.maxAppliableIndex).
// - ReadOnlySafe only; a leader, a single voter included, answers read-index requests only once it
//   has committed an entry in its term (before that its commit index may lag what an earlier
//   leader, or itself before a restart, committed and answered).
// - Pending read requests are bounded (read-only.ts) and dropped when the role changes; a follower
//   does not forward a read another member forwarded to it (its answer would come back to it).
import { Changer, restoreConfig, type SingleChange, type TrackerConfig } from './conf-change';
import { ProgressTracker, VoteResult, type Progress } from './progress';
import { NO_LIMIT, RaftLog } from './raft-log';
import { releaseHeldProposals, stepCandidate, stepFollower, stepLeader } from './raft-step';
import { MAX_PENDING_READ_INDEX, ReadOnly } from './read-only';
import {
  EntryType, ErrCompacted, ErrSnapshotTemporarilyUnavailable, MessageType, NONE, ProgressState, RaftError, StateType,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type RaftConfig,
  type ReadState, type Snapshot, type SoftState,
} from './types';
import { compareNodeIds, isEmptyHardState, isEmptySnap, messageTypeName, newMessage, payloadSize, stateName, voteRespMsgType } from './util';

export const CampaignType = {
  /** The first phase of an election with pre-vote. */
  PreElection: 'CampaignPreElection',
  /** A normal election (or the second phase with pre-vote). */
  Election: 'CampaignElection',
  /** A leader transfer: votes are granted even inside a leader's lease. */
  Transfer: 'CampaignTransfer',
} as const;
export type CampaignType = (typeof CampaignType)[keyof typeof CampaignType];

const CAMPAIGN_TRANSFER_CTX = Buffer.from(CampaignType.Transfer);

export type StepFn = (r: Raft, m: Message) => void;

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  prs: ProgressTracker;
  state: StateType = StateType.Follower;
  /** This member is a learner in the current configuration. */
  isLearner = false;
  /** Messages to send, handed out with the next Ready. */
  msgs: Message[] = [];
  lead: NodeId = NONE;
  /** The member leadership is being transferred to (raft thesis 3.10), or NONE. */
  leadTransferee: NodeId = NONE;
  /**
   * Proposals that reached the leader while it was handing leadership over (see stepLeaderProposal):
   * forwarded to the new leader once known, or appended if the transfer is abandoned. Bounded; etcd's
   * raft drops them, so a client's write would wait for its timeout across a MoveLeader.
   */
  heldProposals: Message[] = [];
  heldProposalBytes = 0;
  /** Ticks since the first held proposal; past two election timeouts they are dropped (see tick). */
  heldProposalTicks = 0;
  /**
   * At least the index of the latest conf change in the log; another may be proposed only once the
   * applied index has reached it (one pending change at a time).
   */
  pendingConfIndex = 0;
  /** An estimate of the bytes of the log's uncommitted tail (leader only; reset on term change). */
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /**
   * Leader and candidate: ticks since the last election timeout. Follower: ticks since the last
   * timeout or the last message from the current leader.
   */
  electionElapsed = 0;
  /** Leader only: ticks since the last heartbeat. */
  heartbeatElapsed = 0;
  checkQuorum: boolean;
  preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  /** In [electionTimeout, 2 * electionTimeout), drawn again on each change to follower or candidate. */
  randomizedElectionTimeout = 0;
  tickFn: () => void = () => this.tickElection();
  stepFn: StepFn = stepFollower;
  /** Read requests held until this leader has committed an entry in its term. */
  pendingReadIndexMessages: Message[] = [];
  /** This member's own progress (undefined when it is not in the configuration); set with it. */
  selfProgress: Progress | undefined = undefined;
  private readonly random: () => number;
  readonly debug?: (msg: string) => void;
  readonly info?: (msg: string) => void;
  readonly warn?: (msg: string) => void;

  constructor(cfg: RaftConfig) {
    validateConfig(cfg);
    const logger = cfg.logger;
    if (logger) {
      this.debug = (msg) => logger('debug', msg);
      this.info = (msg) => logger('info', msg);
      this.warn = (msg) => logger('warn', msg);
    }
    this.id = cfg.id;
    this.random = cfg.random;
    this.raftLog = new RaftLog(cfg.storage, cfg.maxCommittedSizePerReady > 0 ? cfg.maxCommittedSizePerReady : cfg.maxSizePerMsg, this.info);
    this.maxMsgSize = cfg.maxSizePerMsg;
    this.maxUncommittedSize = cfg.maxUncommittedEntriesSize === 0 ? NO_LIMIT : cfg.maxUncommittedEntriesSize;
    this.prs = new ProgressTracker(cfg.maxInflightMsgs);
    this.electionTimeout = cfg.electionTick;
    this.heartbeatTimeout = cfg.heartbeatTick;
    this.checkQuorum = cfg.checkQuorum;
    this.preVote = cfg.preVote;

    const { hardState, confState } = cfg.storage.initialState();
    const restored = restoreConfig(new ProgressTracker(cfg.maxInflightMsgs), this.raftLog.lastIndex(), confState);
    assertConfStatesEquivalent(confState, this.switchToConfig(restored));
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (cfg.applied > 0) this.raftLog.appliedTo(cfg.applied);
    this.becomeFollower(this.term, NONE);
    this.info?.(`newRaft ${this.id.toString(16)} [peers: [${this.prs.voterNodes().map((n) => n.toString(16)).join(',')}], term: ${this.term}, commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`);
  }

  hasLeader(): boolean {
    return this.lead !== NONE;
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /** Queues m for sending, stamped with this member's id and, where the type carries it, its term. */
  send(m: Message): void {
    m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      // Campaign messages carry the term they are about, set by the caller.
      if (m.term === 0) throw new RaftError(`term should be set when sending ${messageTypeName(t)}`);
    } else {
      if (m.term !== 0) throw new RaftError(`term should not be set when sending ${messageTypeName(t)} (was ${m.term})`);
      // Proposals and read requests are forwarded to the leader as they are (local messages).
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends a MsgApp with the entries `to` is missing (or a MsgSnap when the log no longer has them);
   * with sendIfEmpty false, only if there are entries. Returns whether a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    return pr !== undefined && this.maybeSendAppendTo(to, pr, sendIfEmpty);
  }

  /** maybeSendAppend with the progress at hand (the broadcast path looks nothing up). */
  maybeSendAppendTo(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;

    const log = this.raftLog;
    const prevIndex = pr.next - 1;
    const term = log.term(prevIndex);
    let ents: Entry[] | undefined;
    let compacted = term === undefined;
    if (!compacted) {
      try {
        ents = log.entries(pr.next, this.maxMsgSize);
      } catch (err) {
        if (err !== ErrCompacted) throw err;
        compacted = true;
      }
    }
    if (!compacted && ents!.length === 0 && !sendIfEmpty) return false;

    if (compacted) return this.sendSnapshot(to, pr);

    const m: Message = {
      type: MessageType.MsgApp, to, from: NONE, term: 0, logTerm: term!, index: prevIndex, entries: ents!,
      commit: log.committed, reject: false, rejectHint: 0, snapshot: undefined, context: undefined,
    };
    const n = ents!.length;
    if (n !== 0) {
      if (pr.state === ProgressState.Replicate) {
        // Optimistically past what was just sent.
        const last = ents![n - 1].index;
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      } else {
        throw new RaftError(`${this.id} is sending append in unhandled state ${pr.state}`);
      }
    }
    this.send(m);
    return true;
  }

  /** The follower needs entries the log no longer has: send the storage's snapshot (metadata). */
  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.debug?.(`ignore sending snapshot to ${to.toString(16)} since it is not recently active`);
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (err) {
      if (err === ErrSnapshotTemporarilyUnavailable) {
        this.debug?.(`${this.id.toString(16)} failed to send snapshot to ${to.toString(16)} because snapshot is temporarily unavailable`);
        return false;
      }
      throw err;
    }
    if (isEmptySnap(snapshot)) throw new RaftError('need non-empty snapshot');
    const { index: sindex, term: sterm } = snapshot.metadata;
    this.debug?.(`${this.id.toString(16)} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] sent snapshot[index: ${sindex}, term: ${sterm}] to ${to.toString(16)} [${pr}]`);
    pr.becomeSnapshot(sindex);
    this.send(newMessage({ type: MessageType.MsgSnap, to, snapshot }));
    return true;
  }

  bcastAppend(): void {
    const { ids, prList } = this.prs;
    const self = this.selfProgress;
    for (let i = 0; i < ids.length; i++) {
      if (prList[i] !== self) this.maybeSendAppendTo(ids[i], prList[i], true);
    }
  }

  bcastHeartbeat(): void {
    const lastCtx = this.readOnly.lastPendingRequestCtx();
    this.bcastHeartbeatWithCtx(lastCtx.length === 0 ? undefined : Buffer.from(lastCtx, 'latin1'));
  }

  bcastHeartbeatWithCtx(ctx: Buffer | undefined): void {
    const { ids, prList } = this.prs;
    const self = this.selfProgress;
    const committed = this.raftLog.committed;
    for (let i = 0; i < ids.length; i++) {
      const pr = prList[i];
      if (pr === self) continue;
      // min(follower's match, commit): never a commit index the follower may not have.
      this.send(newMessage({ type: MessageType.MsgHeartbeat, to: ids[i], commit: Math.min(pr.match, committed), context: ctx }));
    }
  }

  /**
   * The driver has persisted entries up to (index, term) (advance()). A leader now counts its own
   * copy toward commit.
   */
  stableTo(index: number, term: number): void {
    this.raftLog.stableTo(index, term);
    this.onOwnLogDurable();
  }

  /** The leader's own progress: match is what this member has durably. */
  onOwnLogDurable(): void {
    if (this.state !== StateType.Leader) return;
    const pr = this.selfProgress;
    if (pr && pr.maybeUpdate(this.raftLog.stableLastIndex()) && this.maybeCommit()) this.onCommitAdvanced();
  }

  /** The commit index moved on the leader: answer held reads, tell followers. */
  onCommitAdvanced(): void {
    releasePendingReadIndexMessages(this);
    this.bcastAppend();
  }

  /** The highest index a quorum of voters holds durably. A test-only subclass may lie here. */
  protected quorumCommitIndex(): number {
    return this.prs.committed();
  }

  /** Advances the commit index to what a quorum has; true if it moved (the caller broadcasts). */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.quorumCommitIndex(), this.term);
  }

  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    const stable = this.raftLog.stableLastIndex();
    this.prs.visit((id, pr) => {
      pr.match = id === this.id ? stable : 0;
      pr.next = lastIndex + 1;
      pr.state = ProgressState.Probe;
      pr.pendingSnapshot = 0;
      pr.recentActive = false;
      pr.probeSent = false;
      pr.inflights.reset();
    });
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  /**
   * Appends entries at this leader's term; false (nothing appended) when the uncommitted tail would
   * exceed its limit. The entries are copied: the log owns its entry objects.
   */
  appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    const ents: Entry[] = new Array(es.length);
    for (let i = 0; i < es.length; i++) {
      ents[i] = { index: li + 1 + i, term: this.term, type: es[i].type, data: es[i].data };
    }
    if (!this.increaseUncommittedSize(ents)) {
      this.debug?.(`${this.id.toString(16)} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    this.raftLog.append(ents);
    // The leader's own match waits for the driver's fsync (stableTo); the caller broadcasts.
    return true;
  }

  tick(): void {
    this.tickFn();
    if (this.heldProposals.length === 0) return;
    releaseHeldProposals(this);
    // A transfer lasts at most an election timeout; a leader should be known within another. Later, the
    // proposers have been told their requests timed out (and may have retried): drop, never apply late.
    if (this.heldProposals.length > 0 && ++this.heldProposalTicks > 2 * this.electionTimeout) {
      this.warn?.(`${this.id.toString(16)} dropped ${this.heldProposals.length} proposals held through a leader transfer: no leader took them in time`);
      this.heldProposals = [];
      this.heldProposalBytes = 0;
    }
  }

  /** Followers and candidates: campaign once the randomized election timeout has passed. */
  tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: MessageType.MsgHup, from: this.id }));
    }
  }

  /** Leaders: heartbeat every heartbeatTimeout; check quorum and end a stuck transfer every electionTimeout. */
  tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: MessageType.MsgCheckQuorum, from: this.id }));
      // A transfer that did not finish in an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: MessageType.MsgBeat, from: this.id }));
    }
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = stepFollower;
    this.reset(term);
    this.tickFn = () => this.tickElection();
    this.lead = lead;
    this.state = StateType.Follower;
    this.info?.(`${this.id.toString(16)} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('invalid transition [leader -> candidate]');
    this.stepFn = stepCandidate;
    this.reset(this.term + 1);
    this.tickFn = () => this.tickElection();
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.info?.(`${this.id.toString(16)} became candidate at term ${this.term}`);
  }

  /** Pre-candidate: a new role and step function, but neither the term nor the vote changes. */
  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('invalid transition [leader -> pre-candidate]');
    this.stepFn = stepCandidate;
    this.prs.resetVotes();
    this.tickFn = () => this.tickElection();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
    this.info?.(`${this.id.toString(16)} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new RaftError('invalid transition [follower -> leader]');
    this.stepFn = stepLeader;
    this.reset(this.term);
    this.tickFn = () => this.tickHeartbeat();
    this.lead = this.id;
    this.state = StateType.Leader;
    // The leader is trivially "replicating" to itself; reset() set its match to its durable log.
    this.prs.progress.get(this.id)?.becomeReplicate();
    // Any entry in the log may be an unapplied conf change: hold new ones until all of it is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    const empty: Entry = { index: 0, term: 0, type: EntryType.NORMAL, data: Buffer.alloc(0) };
    if (!this.appendEntry([empty])) throw new RaftError('empty entry was dropped');
    // The no-op does not count against the uncommitted quota (reduceUncommittedSize of it is a no-op
    // for an empty payload, kept for etcd's shape).
    this.reduceUncommittedSize([empty]);
    this.info?.(`${this.id.toString(16)} became leader at term ${this.term}`);
  }

  /** Starts a (pre-)election; the caller has checked that this member may. */
  campaign(t: CampaignType): void {
    if (!this.promotable()) this.warn?.(`${this.id.toString(16)} is unpromotable; campaign() should have been called`);
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-votes are for the next term, before this member moves to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteRespMsgType(voteMsg), true) === VoteResult.Won) {
      // Our own vote is a quorum: a single-voter cluster.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    const ids = [...this.prs.voters].sort(compareNodeIds);
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of ids) {
      if (id === this.id) continue;
      this.info?.(`${this.id.toString(16)} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${messageTypeName(voteMsg)} request to ${id.toString(16)} at term ${this.term}`);
      this.send(newMessage({
        type: voteMsg, to: id, term, index: lastIndex, logTerm: lastTerm,
        context: t === CampaignType.Transfer ? CAMPAIGN_TRANSFER_CTX : undefined,
      }));
    }
  }

  poll(id: NodeId, t: MessageType, v: boolean): VoteResult {
    this.info?.(`${this.id.toString(16)} received ${messageTypeName(t)}${v ? '' : ' rejection'} from ${id.toString(16)} at term ${this.term}`);
    this.prs.recordVote(id, v);
    const { granted, rejected, result } = this.prs.tallyVotes();
    this.info?.(`${this.id.toString(16)} has received ${granted} ${messageTypeName(t)} votes and ${rejected} vote rejections`);
    return result;
  }

  /**
   * Whether this member may grant m's (pre-)vote, the log aside: a repeat of the vote it cast, or
   * no vote cast and no leader known in this term, or a pre-vote for a later term. A test-only
   * subclass may lie here.
   */
  protected canVote(m: Message): boolean {
    return this.vote === m.from
      || (this.vote === NONE && this.lead === NONE)
      || (m.type === MessageType.MsgPreVote && m.term > this.term);
  }

  /** Whether the candidate's log is at least as up to date as ours. A test-only subclass may lie here. */
  protected candidateLogUpToDate(m: Message): boolean {
    return this.raftLog.isUpToDate(m.index, m.logTerm);
  }

  /** Steps a message; throws ErrProposalDropped when a proposal cannot be taken. */
  step(m: Message): void {
    // The message's term first: it may make this member a follower.
    if (m.term === 0) {
      // A local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = m.context !== undefined && m.context.equals(CAMPAIGN_TRANSFER_CTX);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Heard from a leader within the minimum election timeout: neither change term nor vote.
          this.info?.(`${this.id.toString(16)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote.toString(16)}] ignored ${messageTypeName(m.type)} from ${m.from.toString(16)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired (remaining ticks: ${this.electionTimeout - this.electionElapsed})`);
          return;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change term for a pre-vote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote is for a term in our future; the term moves if a quorum grants it.
      } else {
        this.info?.(`${this.id.toString(16)} [term: ${this.term}] received a ${messageTypeName(m.type)} message with higher term from ${m.from.toString(16)} [term: ${m.term}]`);
        if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A leader of an older term: perhaps a delayed message, perhaps this member moved its term
        // while partitioned and cannot win nor rejoin at the old term (check-quorum keeps its votes
        // from counting). Answering with our term makes that leader step down, freeing us.
        this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from }));
      } else if (m.type === MessageType.MsgPreVote) {
        // Reject pre-votes from lower terms, so a candidate with a higher term but a shorter log
        // (from before pre-vote was enabled) cannot deadlock the cluster.
        this.info?.(`${this.id.toString(16)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote.toString(16)}] rejected ${messageTypeName(m.type)} from ${m.from.toString(16)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
        this.send(newMessage({ type: MessageType.MsgPreVoteResp, to: m.from, term: this.term, reject: true }));
      } else {
        this.info?.(`${this.id.toString(16)} [term: ${this.term}] ignored a ${messageTypeName(m.type)} message with lower term from ${m.from.toString(16)} [term: ${m.term}]`);
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup();
        break;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVote(m);
        break;
      default:
        this.stepFn(this, m);
    }
    if (this.heldProposals.length > 0) releaseHeldProposals(this);
  }

  private hup(): void {
    if (this.state === StateType.Leader) {
      this.debug?.(`${this.id.toString(16)} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.warn?.(`${this.id.toString(16)} is unpromotable and can not campaign; ignoring MsgHup`);
      return;
    }
    if (this.raftLog.committed > this.raftLog.applied) {
      // From the first entry the log still has: a snapshot waiting to be applied (etcd 3.4 panics
      // here) carries its own conf state.
      const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
      const n = lo > this.raftLog.committed ? 0 : numOfPendingConf(this.raftLog.slice(lo, this.raftLog.committed + 1, NO_LIMIT));
      if (n !== 0) {
        this.warn?.(`${this.id.toString(16)} cannot campaign at term ${this.term} since there are still ${n} pending configuration changes to apply`);
        return;
      }
    }
    this.info?.(`${this.id.toString(16)} is starting a new election at term ${this.term}`);
    this.campaign(this.preVote ? CampaignType.PreElection : CampaignType.Election);
  }

  private handleVote(m: Message): void {
    if (this.canVote(m) && this.candidateLogUpToDate(m)) {
      // Learners vote too: a learner may have been promoted in a conf change it has not applied yet,
      // and the candidate, believing it a voter, may need its vote (etcd issue 7625).
      this.info?.(`${this.id.toString(16)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote.toString(16)}] cast ${messageTypeName(m.type)} for ${m.from.toString(16)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      // The answer carries the message's term, not ours: for a pre-vote ours may be older, and the
      // candidate would ignore an answer from its past.
      this.send(newMessage({ type: voteRespMsgType(m.type), to: m.from, term: m.term }));
      if (m.type === MessageType.MsgVote) {
        // Only real votes are recorded.
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.info?.(`${this.id.toString(16)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote.toString(16)}] rejected ${messageTypeName(m.type)} from ${m.from.toString(16)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      this.send(newMessage({ type: voteRespMsgType(m.type), to: m.from, term: this.term, reject: true }));
    }
  }

  /**
   * Installs a leader's snapshot (metadata; the driver brings the data). False if it is stale or
   * the log already has its last entry (then only the commit index moves).
   */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defense in depth: only followers are handed snapshots.
      this.warn?.(`${this.id.toString(16)} attempted to restore snapshot as leader; should never happen`);
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) {
      this.warn?.(`${this.id.toString(16)} attempted to restore snapshot but it is not in the ConfState ${JSON.stringify({ voters: cs.voters.map(String), learners: cs.learners.map(String) })}; should never happen`);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      this.info?.(`${this.id.toString(16)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] fast-forwarded commit to snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    // The configuration anew, from the snapshot's.
    this.prs = new ProgressTracker(this.prs.maxInflight);
    const restored = restoreConfig(new ProgressTracker(this.prs.maxInflight), this.raftLog.lastIndex(), cs);
    assertConfStatesEquivalent(cs, this.switchToConfig(restored));
    const pr = this.prs.progress.get(this.id);
    pr?.maybeUpdate(pr.next - 1);
    this.info?.(`${this.id.toString(16)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
    return true;
  }

  /** Whether this member may become leader: it is a voter in its configuration. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner;
  }

  /** Applies a committed conf change; returns the new ConfState. Throws (changing nothing) if invalid. */
  applyConfChange(cc: ConfChange | SingleChange): ConfState {
    const cfg = new Changer(this.prs, this.raftLog.lastIndex()).simple([{ type: cc.type, nodeId: cc.nodeId }]);
    return this.switchToConfig(cfg);
  }

  /**
   * Installs a configuration, and acts on it: a leader may now commit more (quorum changed), and
   * probes new members at once.
   */
  switchToConfig(cfg: TrackerConfig): ConfState {
    this.prs.setConfig(cfg.voters, cfg.learners, cfg.progress);
    this.selfProgress = cfg.progress.get(this.id);
    this.info?.(`${this.id.toString(16)} switched to configuration voters=(${this.prs.voterNodes().map(String).join(' ')}) learners=(${this.prs.learnerNodes().map(String).join(' ')})`);
    const cs = this.prs.confState();
    const pr = this.prs.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((!pr || this.isLearner) && this.state === StateType.Leader) {
      // A leader removed (or demoted) stays leader until it steps down, as in etcd 3.4; it can no
      // longer take proposals.
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      this.onCommitAdvanced();
    } else {
      // Probe new members now, not at the next heartbeat or proposal.
      this.prs.visit((id, pr) => {
        if (pr !== this.selfProgress) this.maybeSendAppendTo(id, pr, false);
      });
    }
    // The transfer target was removed: abort the transfer.
    if (this.leadTransferee !== NONE && !this.prs.progress.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex()) {
      throw new RaftError(`${this.id.toString(16)} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    if (hs.commit < this.raftLog.committed) {
      // The storage's snapshot is newer than the hard state (the driver made the snapshot durable
      // and stopped before the hard state that followed it): a snapshot's index is committed by
      // definition, so keep it (etcd 3.4 refuses to start).
      this.warn?.(`${this.id.toString(16)} state.commit ${hs.commit} is below the snapshot index ${this.raftLog.committed}; using the snapshot's`);
    } else {
      this.raftLog.committed = hs.commit;
    }
    this.term = hs.term;
    this.vote = hs.vote;
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  sendTimeoutNow(to: NodeId): void {
    this.send(newMessage({ type: MessageType.MsgTimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnErrCompacted(this.raftLog.committed) === this.term;
  }

  /** Answers a read request at readIndex: a local one becomes a ReadState, a forwarded one a MsgReadIndexResp. */
  responseToReadIndexReq(req: Message, readIndex: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.context ?? Buffer.alloc(0) });
      return;
    }
    this.send(newMessage({ type: MessageType.MsgReadIndexResp, to: req.from, index: readIndex, context: req.context }));
  }

  /** Records the payload of new entries; false if they would push the uncommitted tail past its limit. */
  increaseUncommittedSize(ents: Entry[]): boolean {
    let s = 0;
    for (let i = 0; i < ents.length; i++) s += payloadSize(ents[i]);
    // An empty tail takes any proposal, however large; otherwise the limit holds.
    if (this.uncommittedSize > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    this.uncommittedSize += s;
    return true;
  }

  /** Committed entries leave the uncommitted tail (an estimate: never below 0). */
  reduceUncommittedSize(ents: Entry[]): void {
    // Followers do not track it.
    if (this.uncommittedSize === 0) return;
    let s = 0;
    for (let i = 0; i < ents.length; i++) s += payloadSize(ents[i]);
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  /** Holds a read request until this leader has committed in its term; false if the queue is full. */
  holdReadIndex(m: Message): void {
    if (this.pendingReadIndexMessages.length >= MAX_PENDING_READ_INDEX) {
      this.debug?.(`${this.id.toString(16)} dropping a read index request: ${MAX_PENDING_READ_INDEX} already held`);
      return;
    }
    this.pendingReadIndexMessages.push(m);
  }

  toString(): string {
    return `${this.id.toString(16)} [term: ${this.term}, state: ${stateName(this.state)}, lead: ${this.lead.toString(16)}]`;
  }
}

function numOfPendingConf(ents: Entry[]): number {
  let n = 0;
  for (const e of ents) if (e.type === EntryType.CONF_CHANGE) n++;
  return n;
}

/** Answers the reads held until the first commit in this leader's term. */
export function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0) return;
  if (!r.committedEntryInCurrentTerm()) return;
  const msgs = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of msgs) sendMsgReadIndexResponse(r, m);
}

/**
 * Starts a heartbeat round to confirm leadership for a read at the current commit index (a single
 * voter needs no round).
 */
export function sendMsgReadIndexResponse(r: Raft, m: Message): void {
  if (r.prs.isSingleton()) {
    r.responseToReadIndexReq(m, r.raftLog.committed);
    return;
  }
  if (!r.readOnly.addRequest(r.raftLog.committed, m)) {
    r.debug?.(`${r.id.toString(16)} dropping a read index request: ${MAX_PENDING_READ_INDEX} already waiting`);
    return;
  }
  // The leader acknowledges its own request.
  r.readOnly.recvAck(r.id, m.context);
  r.bcastHeartbeatWithCtx(m.context && m.context.length > 0 ? m.context : undefined);
}

export function validateConfig(c: RaftConfig): void {
  if (c.id === NONE) throw new RaftError('cannot use none as id');
  if (!(c.heartbeatTick > 0)) throw new RaftError('heartbeat tick must be greater than 0');
  if (!(c.electionTick > c.heartbeatTick)) throw new RaftError('election tick must be greater than heartbeat tick');
  if (!c.storage) throw new RaftError('storage cannot be nil');
  if (!(c.maxInflightMsgs > 0)) throw new RaftError('max inflight messages must be greater than 0');
  if (typeof c.random !== 'function') throw new RaftError('random must be a function returning [0, 1)');
  if (!(c.maxSizePerMsg >= 0) || !(c.maxCommittedSizePerReady >= 0) || !(c.maxUncommittedEntriesSize >= 0) || !(c.applied >= 0)) {
    throw new RaftError('sizes and applied must be non-negative numbers');
  }
}

function assertConfStatesEquivalent(a: ConfState, b: ConfState): void {
  const norm = (cs: ConfState): string => `${[...cs.voters].sort(compareNodeIds).join(',')}|${[...cs.learners].sort(compareNodeIds).join(',')}`;
  if (norm(a) !== norm(b)) throw new RaftError(`ConfStates not equivalent after sorting: voters/learners ${norm(a)} vs ${norm(b)}`);
}

