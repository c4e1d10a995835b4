// The raft core's data types: the contract between the pure state machine (src/raft/core/), its
// driver (WAL, transport, apply) and the peer transport's codec. Shapes and numbering follow
// etcd-io/raft's raftpb (raft.proto), so a reader who knows etcd's raft knows these.

/** A member id: etcd's 64-bit member ID (0 = none). */
export type NodeId = bigint;
export const NONE: NodeId = 0n;

/** raftpb.EntryType. An empty NORMAL entry is the no-op a new leader appends to commit its term. */
export const EntryType = {
  NORMAL: 0,
  CONF_CHANGE: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** A raft log entry: what the WAL stores and the applier applies, in index order. */
export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  /** NORMAL: etcd's InternalRaftRequest bytes (empty for the no-op); CONF_CHANGE: an encoded ConfChange. */
  data: Buffer;
}

/** Raft's persistent state besides the log (raftpb.HardState). */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** The members' roles as of a log position (raftpb.ConfState, v1 subset: voters and learners). */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** raftpb.ConfChangeType. */
export const ConfChangeType = {
  ADD_NODE: 0,
  REMOVE_NODE: 1,
  UPDATE_NODE: 2,
  ADD_LEARNER_NODE: 3,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** raftpb.ConfChange (v1): one member added, removed, updated or added as a learner. */
export interface ConfChange {
  id: bigint;
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to raft; etcd puts the member's JSON (id, peer URLs, name, learner) here. */
  context: Buffer;
}

/**
 * Where a snapshot stands in the log. The snapshot's data is not carried by the core: the driver's
 * snapshot is the backend as of an applied index ≥ metadata.index, streamed by the transport beside
 * the MsgSnap that carries this metadata.
 */
export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
}

/** raftpb.MessageType, same numbers. */
export const MessageType = {
  MsgHup: 0,
  MsgBeat: 1,
  MsgProp: 2,
  MsgApp: 3,
  MsgAppResp: 4,
  MsgVote: 5,
  MsgVoteResp: 6,
  MsgSnap: 7,
  MsgHeartbeat: 8,
  MsgHeartbeatResp: 9,
  MsgUnreachable: 10,
  MsgSnapStatus: 11,
  MsgCheckQuorum: 12,
  MsgTransferLeader: 13,
  MsgTimeoutNow: 14,
  MsgReadIndex: 15,
  MsgReadIndexResp: 16,
  MsgPreVote: 17,
  MsgPreVoteResp: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** raftpb.Message. Fields a type does not use are 0 / empty. */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** MsgApp: term of the entry at `index`; votes: the candidate's last log term. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  /** MsgSnap only. */
  snapshot?: Snapshot;
  reject: boolean;
  rejectHint: number;
  /** MsgHeartbeat(Resp), MsgReadIndex(Resp): the read request's context; votes: campaign kind. */
  context?: Buffer;
}

/** raft.StateType. */
export const StateType = {
  Follower: 0,
  Candidate: 1,
  Leader: 2,
  PreCandidate: 3,
} as const;
export type StateType = (typeof StateType)[keyof typeof StateType];

/** Volatile state worth telling the driver about when it changes (raft.SoftState). */
export interface SoftState {
  lead: NodeId;
  raftState: StateType;
}

/** A linearizable read's answer: once applied ≥ index, the read with this context may be served. */
export interface ReadState {
  index: number;
  requestCtx: Buffer;
}

/**
 * What the driver must do next (raft.Ready), in this order:
 * 1. persist `hardState` (if any), `entries` and `snapshot` (if any) durably;
 *    messages may be sent before that only where `Message` does not depend on it — the driver sends
 *    everything in `messages` after persisting, except a leader's MsgApp/MsgHeartbeat, which it may
 *    send at once (see `mustSync`);
 * 2. install `snapshot` (if any) into the state machine, then apply `committedEntries` in order;
 * 3. call advance(rd).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  /** Entries to append to stable storage (after truncating any conflicting suffix). */
  entries: Entry[];
  snapshot?: Snapshot;
  /** Committed entries to apply (all of them already durable on this member). */
  committedEntries: Entry[];
  messages: Message[];
  /** Whether the hard state or entries must be fsynced before messages are sent. */
  mustSync: boolean;
}

/**
 * Read access to the stable log (etcd-io/raft's Storage): the driver's MemoryStorage mirror of the
 * WAL. Errors are thrown as the sentinel errors below.
 */
export interface Storage {
  /** The persisted hard state and the conf state as of the last snapshot / bootstrap. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at most maxSize bytes of data (always at least one entry if any). */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i (i may be the snapshot's index). */
  term(i: number): number;
  lastIndex(): number;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): number;
  snapshot(): Snapshot;
}

export class RaftError extends Error {}
/** The requested index is older than the storage's first index (compacted). */
export const ErrCompacted = new RaftError('requested index is unavailable due to compaction');
/** The requested index is newer than the storage's last index. */
export const ErrUnavailable = new RaftError('requested entry at index is unavailable');
export const ErrSnapOutOfDate = new RaftError('requested index is older than the existing snapshot');
export const ErrSnapshotTemporarilyUnavailable = new RaftError('snapshot is temporarily unavailable');
/** A proposal could not be taken (no leader, a leader transfer under way, a pending conf change). */
export const ErrProposalDropped = new RaftError('raft proposal dropped');
export const ErrStepLocalMsg = new RaftError('raft: cannot step raft local message');
export const ErrStepPeerNotFound = new RaftError('raft: cannot step as peer not found');

/** Config of one raft core (raft.Config). Time is counted in ticks; the driver calls tick(). */
export interface RaftConfig {
  id: NodeId;
  /** Ticks without a leader's message before a follower campaigns; randomized in [e, 2e). */
  electionTick: number;
  heartbeatTick: number;
  storage: Storage;
  /** The last applied index (0 on a fresh member); committed entries after it are handed out. */
  applied: number;
  /** Most bytes of entry data in one MsgApp. */
  maxSizePerMsg: number;
  /** Bytes of committed entries handed out per Ready (at least one entry). */
  maxCommittedSizePerReady: number;
  /** Most MsgApp in flight to one follower in the replicate state. */
  maxInflightMsgs: number;
  /** Bytes of uncommitted entries the leader accepts before dropping proposals (0 = no limit). */
  maxUncommittedEntriesSize: number;
  checkQuorum: boolean;
  preVote: boolean;
  /** Randomness, injected (returns [0, 1)): the randomized election timeout. */
  random: () => number;
  /** Debug log (no I/O of its own). */
  logger?: (level: 'debug' | 'info' | 'warn', msg: string) => void;
}

/** Progress of a follower as the leader tracks it (for Status and tests). */
export const ProgressState = { Probe: 0, Replicate: 1, Snapshot: 2 } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  /** Leader only. */
  progress?: Map<NodeId, { match: number; next: number; state: ProgressState; recentActive: boolean; isLearner: boolean }>;
}

export const SnapshotStatus = { Finish: 0, Failure: 1 } as const;
export type SnapshotStatus = (typeof SnapshotStatus)[keyof typeof SnapshotStatus];
