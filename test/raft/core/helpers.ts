// Test helpers for the raft core, in the shape of etcd-io/raft's test helpers (newTestRaft,
// newNetwork, nextEnts, ...), so the ported tests read like the originals.
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { Raft } from '../../../src/raft/core/raft';
import { NO_LIMIT } from '../../../src/raft/core/raft-log';
import {
  EntryType, MessageType, StateType,
  type ConfState, type Entry, type Message, type NodeId, type RaftConfig, type Storage,
} from '../../../src/raft/core/types';
import { newMessage } from '../../../src/raft/core/util';

/** mulberry32: a small deterministic PRNG returning [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const ids = (...n: number[]): NodeId[] => n.map((x) => BigInt(x));

export function idsBySize(size: number): NodeId[] {
  return Array.from({ length: size }, (_, i) => BigInt(i + 1));
}

/** A MemoryStorage whose initial conf state has these voters and learners (as the driver's bootstrap sets it). */
export function newTestMemoryStorage(voters: NodeId[], learners: NodeId[] = []): MemoryStorage {
  const s = new MemoryStorage();
  const confState: ConfState = { voters: voters.slice(), learners: learners.slice() };
  s.applySnapshot({ metadata: { index: 0, term: 0, confState } });
  return s;
}

let seedCounter = 1;

export function newTestConfig(id: NodeId, election: number, heartbeat: number, storage: Storage, over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    electionTick: election,
    heartbeatTick: heartbeat,
    storage,
    applied: 0,
    maxSizePerMsg: NO_LIMIT,
    maxCommittedSizePerReady: 0,
    maxInflightMsgs: 256,
    maxUncommittedEntriesSize: 0,
    checkQuorum: false,
    preVote: false,
    random: mulberry32(seedCounter++),
    ...over,
  };
}

/** A storage with these voters (as the bootstrap sets them) and entries already persisted. */
export function storageWith(peers: (NodeId | number)[], entries: Entry[] = [], learners: (NodeId | number)[] = []): MemoryStorage {
  const s = newTestMemoryStorage(peers.map((p) => BigInt(p)), learners.map((p) => BigInt(p)));
  s.append(entries);
  return s;
}

/** Messages sorted by recipient, then type: the order etcd's tests compare them in. */
export function sortMsgs(ms: Message[]): Message[] {
  return ms.slice().sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : a.type - b.type));
}

/** etcd's newTestRaft: peers become the storage's voters when the storage has no conf state yet. */
export function newTestRaft(id: NodeId | number, peers: (NodeId | number)[], election: number, heartbeat: number, storage?: MemoryStorage, over: Partial<RaftConfig> = {}): Raft {
  const s = storage ?? newTestMemoryStorage(peers.map((p) => BigInt(p)));
  if (storage && peers.length > 0 && s.initialState().confState.voters.length === 0) {
    s.applySnapshot({ metadata: { index: 0, term: 0, confState: { voters: peers.map((p) => BigInt(p)), learners: [] } } });
  }
  return new Raft(newTestConfig(BigInt(id), election, heartbeat, s, over));
}

export function newTestLearnerRaft(id: number, peers: number[], learners: number[], election: number, heartbeat: number, over: Partial<RaftConfig> = {}): Raft {
  const s = newTestMemoryStorage(peers.map(BigInt), learners.map(BigInt));
  return new Raft(newTestConfig(BigInt(id), election, heartbeat, s, over));
}

export function storageOf(r: Raft): MemoryStorage {
  return r.raftLog.storage as MemoryStorage;
}

/** Takes the messages the raft has queued. */
export function readMessages(r: Raft): Message[] {
  const m = r.msgs;
  r.msgs = [];
  return m;
}

/**
 * Does what the driver does with a Ready's entries and snapshot: appends them to the storage and
 * tells raft they are durable (a leader then counts its own copy toward commit).
 */
export function persist(r: Raft): void {
  const s = storageOf(r);
  const snap = r.raftLog.unstable.snapshot;
  if (snap) {
    s.applySnapshot(snap);
    r.raftLog.stableSnapTo(snap.metadata.index);
  }
  const ents = r.raftLog.unstableEntries();
  if (ents.length > 0) {
    s.append(ents);
    const last = ents[ents.length - 1];
    r.stableTo(last.index, last.term);
  }
}

/** etcd's nextEnts: persists everything, then takes the appliable entries and marks them applied. */
export function nextEnts(r: Raft): Entry[] {
  persist(r);
  const ents = r.raftLog.nextEnts();
  r.raftLog.appliedTo(r.raftLog.committed);
  return ents;
}

export function mustAppendEntry(r: Raft, ...ents: Entry[]): void {
  if (!r.appendEntry(ents)) throw new Error('entry unexpectedly dropped');
}

export function entry(index: number, term: number, data?: string, type: EntryType = EntryType.NORMAL): Entry {
  return { index, term, type, data: data === undefined ? Buffer.alloc(0) : Buffer.from(data) };
}

/** Entries (index, term) with empty data, e.g. ents([1,1],[2,2]). */
export function ents(...it: [number, number][]): Entry[] {
  return it.map(([index, term]) => entry(index, term));
}

/** Messages with defaults: msg({type: MessageType.MsgApp, from: 1, to: 2, term: 1}). */
export function msg(f: Omit<Partial<Message>, 'from' | 'to'> & { type: MessageType; from?: number | bigint; to?: number | bigint }): Message {
  const { from, to, ...rest } = f;
  return newMessage({ ...rest, from: from === undefined ? 0n : BigInt(from), to: to === undefined ? 0n : BigInt(to) });
}

export function propMsg(to: number, data = 'somedata'): Message {
  return msg({ type: MessageType.MsgProp, from: to, to, entries: [entry(0, 0, data)] });
}

/** etcd's acceptAndReply: the follower's success answer to a MsgApp. */
export function acceptAndReply(m: Message): Message {
  if (m.type !== MessageType.MsgApp) throw new Error('type should be MsgApp');
  return newMessage({ type: MessageType.MsgAppResp, from: m.to, to: m.from, term: m.term, index: m.index + m.entries.length });
}

/**
 * etcd's commitNoopEntry: a new leader's empty entry acknowledged by everyone and made durable on
 * the leader, applied, and the messages that follow discarded.
 */
export function commitNoopEntry(r: Raft): void {
  if (r.state !== StateType.Leader) throw new Error('it should only be used when it is the leader');
  persist(r);
  r.bcastAppend();
  for (const m of readMessages(r)) {
    if (m.type !== MessageType.MsgApp || m.entries.length !== 1 || m.entries[0].data.length !== 0) throw new Error('not a message to append noop entry');
    r.step(acceptAndReply(m));
  }
  readMessages(r);
  r.raftLog.appliedTo(r.raftLog.committed);
}

export function setRandomizedElectionTimeout(r: Raft, v: number): void {
  r.randomizedElectionTimeout = v;
}

/** A peer that swallows everything (etcd's blackHole / nopStepper). */
export class BlackHole {
  step(_m: Message): void {}
}
export const nopStepper = new BlackHole();

/** Builds a raft for a network position: its id and all the peers' ids. */
export type RaftFactory = (id: NodeId, peers: NodeId[]) => Raft;
export type Peer = Raft | BlackHole | RaftFactory | null;

/** etcd's entsWithConfig: a raft whose log holds entries with these terms (index 1..n), at the last term. */
export function entsWithConfig(over: Partial<RaftConfig> | undefined, ...terms: number[]): RaftFactory {
  return (id, peers) => {
    const s = newTestMemoryStorage(peers);
    s.append(terms.map((t, i) => entry(i + 1, t)));
    const r = new Raft(newTestConfig(id, 5, 1, s, over));
    r.reset(terms[terms.length - 1]);
    return r;
  };
}

/** etcd's votedWithConfig: a raft that voted for `vote` in `term` but has no log. */
export function votedWithConfig(over: Partial<RaftConfig> | undefined, vote: number, term: number): RaftFactory {
  return (id, peers) => {
    const s = newTestMemoryStorage(peers);
    s.setHardState({ vote: BigInt(vote), term, commit: 0 });
    const r = new Raft(newTestConfig(id, 5, 1, s, over));
    r.reset(term);
    return r;
  };
}

/**
 * etcd's network: delivers messages between in-memory peers, depth-first in send order, with drops,
 * cuts and ignored types. After each step a peer's new entries are persisted, as the driver would.
 */
export class Network {
  readonly peers = new Map<NodeId, Raft | BlackHole>();
  private readonly dropm = new Map<string, number>();
  private readonly ignorem = new Set<MessageType>();
  /** Called for each message sent; false drops it. */
  msgHook?: (m: Message) => boolean;
  private readonly rand = mulberry32(7);

  constructor(peers: Peer[], over?: Partial<RaftConfig>) {
    const addrs = idsBySize(peers.length);
    peers.forEach((p, j) => {
      const id = addrs[j];
      if (p === null) {
        this.peers.set(id, new Raft(newTestConfig(id, 10, 1, newTestMemoryStorage(addrs), over)));
      } else if (typeof p === 'function') {
        this.peers.set(id, p(id, addrs));
      } else {
        this.peers.set(id, p);
      }
    });
  }

  raft(id: number | bigint): Raft {
    const p = this.peers.get(BigInt(id));
    if (!(p instanceof Raft)) throw new Error(`peer ${id} is not a raft`);
    return p;
  }

  send(...msgs: Message[]): void {
    const queue = msgs.slice();
    while (queue.length > 0) {
      const m = queue.shift()!;
      const p = this.peers.get(m.to);
      if (!p) continue;
      if (p instanceof Raft) {
        try {
          p.step(m);
        } catch (err) {
          // A dropped proposal is an answer to the proposer, not a network event.
          if ((err as Error).message !== 'raft proposal dropped') throw err;
        }
        persist(p);
        queue.push(...this.filter(readMessages(p)));
      }
    }
  }

  drop(from: number, to: number, perc: number): void {
    this.dropm.set(`${from}-${to}`, perc);
  }

  cut(one: number, other: number): void {
    this.drop(one, other, 2.0);
    this.drop(other, one, 2.0);
  }

  isolate(id: number): void {
    for (let i = 1; i <= this.peers.size; i++) {
      if (i !== id) {
        this.drop(id, i, 1.0);
        this.drop(i, id, 1.0);
      }
    }
  }

  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  recover(): void {
    this.dropm.clear();
    this.ignorem.clear();
  }

  filter(msgs: Message[]): Message[] {
    const out: Message[] = [];
    for (const m of msgs) {
      if (this.ignorem.has(m.type)) continue;
      if (m.type === MessageType.MsgHup) throw new Error('unexpected msgHup');
      const perc = this.dropm.get(`${m.from}-${m.to}`) ?? 0;
      if (this.rand() < perc) continue;
      if (this.msgHook && !this.msgHook(m)) continue;
      out.push(m);
    }
    return out;
  }
}

export function hup(id: number): Message {
  return msg({ type: MessageType.MsgHup, from: id, to: id });
}

export function beat(id: number): Message {
  return msg({ type: MessageType.MsgBeat, from: id, to: id });
}

/** Entry data as strings, for comparisons. */
export function datas(es: Entry[]): string[] {
  return es.map((e) => e.data.toString());
}

/** Entries as plain [index, term, data] tuples, for comparisons. */
export function flat(es: Entry[]): [number, number, string][] {
  return es.map((e) => [e.index, e.term, e.data.toString()]);
}
