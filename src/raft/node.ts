import { EntryType, type Entry, type HardState } from './entry';

/** What the caller must do next: persist `entries` (and `hardState`), then apply `committed`. */
export interface Ready {
  entries: Entry[];
  hardState: HardState | undefined;
  committed: Entry[];
}

export interface RaftNodeState {
  id: bigint;
  /** Hard state read back from the WAL. */
  hardState: HardState;
  /** Index of the last entry in the WAL. */
  lastIndex: number;
  /** Index of the last entry already applied (the backend's consistent index, after replay). */
  applied: number;
}

/**
 * Raft as a pure state machine, for a cluster of one: no I/O, no timers. Inputs are proposals and
 * advance(); outputs are Ready batches. On start it becomes leader of a new term and appends an empty
 * entry, as a raft leader does. With one member, an entry is committed as soon as it is persisted.
 * (Replication, elections and membership come with the multi-member raft.)
 */
export class RaftNode {
  readonly id: bigint;
  term: number;
  lastIndex: number;
  commitIndex: number;
  appliedIndex: number;
  private unstable: Entry[] = [];
  /** Persisted and committed, not yet handed out for apply. */
  private committedQueue: Entry[] = [];
  private hardStateDirty: boolean;

  constructor(s: RaftNodeState) {
    this.id = s.id;
    this.lastIndex = s.lastIndex;
    this.commitIndex = Math.max(s.hardState.commit, s.applied);
    this.appliedIndex = s.applied;
    // Elect ourselves: a new term, our own vote, and an empty entry to commit the term.
    this.term = s.hardState.term + 1;
    this.hardStateDirty = true;
    this.append(EntryType.EMPTY, Buffer.alloc(0));
  }

  get hardState(): HardState {
    return { term: this.term, vote: this.id, commit: this.commitIndex };
  }

  /** Entries found in the WAL after the applied index, to apply before serving (replay). */
  restoreCommitted(entries: Entry[]): void {
    this.committedQueue.push(...entries.filter((e) => e.index > this.appliedIndex));
  }

  /** Appends a client request; returns its index. */
  propose(data: Buffer): number {
    return this.append(EntryType.NORMAL, data);
  }

  private append(type: EntryType, data: Buffer): number {
    const e: Entry = { index: ++this.lastIndex, term: this.term, type, data };
    this.unstable.push(e);
    return e.index;
  }

  hasReady(): boolean {
    return this.unstable.length > 0 || this.committedQueue.length > 0 || this.hardStateDirty;
  }

  ready(): Ready {
    const rd: Ready = {
      entries: this.unstable,
      hardState: this.hardStateDirty ? this.hardState : undefined,
      committed: this.committedQueue,
    };
    this.unstable = [];
    this.committedQueue = [];
    this.hardStateDirty = false;
    return rd;
  }

  /** The caller persisted rd.entries and applied rd.committed. One member: persisted = committed. */
  advance(rd: Ready): void {
    if (rd.committed.length) this.appliedIndex = rd.committed[rd.committed.length - 1].index;
    if (rd.entries.length) {
      this.commitIndex = rd.entries[rd.entries.length - 1].index;
      this.committedQueue.push(...rd.entries);
    }
  }
}
