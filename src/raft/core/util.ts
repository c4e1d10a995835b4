// Small helpers shared by the raft core's files (etcd-io/raft's util.go): message classes, entry
// sizes, and the one-line descriptions used in logs and in the interaction tests.
import {
  EntryType, MessageType, StateType, RaftError,
  type ConfState, type Entry, type HardState, type Message, type NodeId, type Snapshot,
} from './types';
import { decodeConfChange } from './conf-change-codec';

/** Messages raft makes for itself; never accepted from the network. */
export function isLocalMsg(t: MessageType): boolean {
  return t === MessageType.MsgHup || t === MessageType.MsgBeat || t === MessageType.MsgUnreachable
    || t === MessageType.MsgSnapStatus || t === MessageType.MsgCheckQuorum;
}

/** Answers, which only a peer raft tracks may send. */
export function isResponseMsg(t: MessageType): boolean {
  return t === MessageType.MsgAppResp || t === MessageType.MsgVoteResp || t === MessageType.MsgHeartbeatResp
    || t === MessageType.MsgUnreachable || t === MessageType.MsgPreVoteResp;
}

export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new RaftError(`not a vote message: ${messageTypeName(t)}`);
}

/**
 * Whether a message may be sent before the Ready that carries it has been persisted. Only a
 * leader sends these, and they report nothing this member has not made durable already: its term
 * and vote were on disk before it could collect the votes that made it leader, and its own
 * unpersisted entries count toward commit only once it has advanced past them. Votes, vote
 * answers and append answers must wait for the fsync.
 */
export function maySendBeforePersist(m: Message): boolean {
  return m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap;
}

/** Bytes of an unsigned varint. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (v = Math.floor(v / 0x800000000); v > 0; v = Math.floor(v / 128)) n++;
  return n;
}

/** raftpb.Entry.Size(): the entry's protobuf size, which etcd uses for every byte limit on entries. */
export function entrySize(e: Entry): number {
  const l = e.data.length;
  return 3 + varintSize(e.term) + varintSize(e.index) + varintSize(e.type) + (l > 0 ? 1 + varintSize(l) + l : 0);
}

/** The uncommitted-size accounting counts only the payload (etcd's PayloadSize). */
export function payloadSize(e: Entry): number {
  return e.data.length;
}

/**
 * How many of ents[lo, hi) fit in maxSize bytes (at least one if any): etcd's limitSize without
 * copying, so callers slice once.
 */
export function limitCount(ents: readonly Entry[], lo: number, hi: number, maxSize: number): number {
  if (hi <= lo) return 0;
  let size = entrySize(ents[lo]);
  let n = 1;
  for (let i = lo + 1; i < hi; i++) {
    size += entrySize(ents[i]);
    if (size > maxSize) break;
    n++;
  }
  return n;
}

/** etcd's limitSize: the longest prefix within maxSize bytes (at least one entry). */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  const n = limitCount(ents, 0, ents.length, maxSize);
  return n === ents.length ? ents : ents.slice(0, n);
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0n, commit: 0 }) as HardState;

export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isEmptyHardState(hs: HardState): boolean {
  return isHardStateEqual(hs, EMPTY_HARD_STATE);
}

export function isEmptySnap(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/** etcd's MustSync: term, vote or entries changed, so the write must be fsynced before answering. */
export function mustSync(st: HardState, prev: HardState, entsNum: number): boolean {
  return entsNum !== 0 || st.vote !== prev.vote || st.term !== prev.term;
}

export function compareNodeIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortedIds(ids: Iterable<NodeId>): NodeId[] {
  return [...ids].sort(compareNodeIds);
}

/** A fresh message with every field at its zero value. */
export function newMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    to: 0n, from: 0n, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    ...fields,
  };
}

const MESSAGE_TYPE_NAMES: string[] = Object.keys(MessageType);
const STATE_NAMES: string[] = Object.keys(StateType).map((k) => `State${k}`);

export function messageTypeName(t: MessageType): string {
  return MESSAGE_TYPE_NAMES[t] ?? `MsgUnknown(${t})`;
}

export function stateName(s: StateType): string {
  return STATE_NAMES[s] ?? `StateUnknown(${s})`;
}

export function describeHardState(hs: HardState): string {
  return `Term:${hs.term}${hs.vote !== 0n ? ` Vote:${hs.vote}` : ''} Commit:${hs.commit}`;
}

export function describeConfState(cs: ConfState): string {
  return `Voters:[${cs.voters.join(' ')}] Learners:[${cs.learners.join(' ')}]`;
}

export function describeSnapshot(s: Snapshot): string {
  const m = s.metadata;
  return `Index:${m.index} Term:${m.term} ConfState:${describeConfState(m.confState)}`;
}

/** "term/index TYPE data", as etcd's DescribeEntry; data printed as a JSON string. */
export function describeEntry(e: Entry, formatData?: (e: Entry) => string): string {
  let type: string;
  let data: string;
  if (e.type === EntryType.CONF_CHANGE) {
    type = 'EntryConfChange';
    data = describeConfChangeData(e.data);
  } else {
    type = 'EntryNormal';
    data = formatData ? formatData(e) : e.data.length > 0 ? JSON.stringify(e.data.toString('latin1')) : '';
  }
  return `${e.term}/${e.index} ${type}${data ? ` ${data}` : ''}`;
}

/** etcd's ConfChangesToString: v<id> add voter, l<id> add learner, r<id> remove, u<id> update. */
function describeConfChangeData(data: Buffer): string {
  try {
    const cc = decodeConfChange(data);
    return `${'vrul'[cc.type]}${cc.nodeId}`;
  } catch (err) {
    return (err as Error).message;
  }
}

export function describeMessage(m: Message, formatData?: (e: Entry) => string): string {
  let s = `${m.from}->${m.to} ${messageTypeName(m.type)} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map((e) => describeEntry(e, formatData)).join(', ')}]`;
  if (m.snapshot && !isEmptySnap(m.snapshot)) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  if (m.context && m.context.length > 0) s += ` Context:${JSON.stringify(m.context.toString('latin1'))}`;
  return s;
}
