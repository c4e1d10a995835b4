// etcd-io/raft's MemoryStorage: the stable log as raft reads it. The driver mirrors its WAL into it
// (hard state, entries, snapshot point) after they are durable, and compacts it behind snapshots.
import {
  ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, RaftError,
  type ConfState, type Entry, type HardState, type Snapshot, type Storage,
} from './types';
import { limitCount } from './util';

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0n, commit: 0 };
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } };
  /** ents[i] is at log index ents[0].index + i; ents[0] is a dummy holding the snapshot's index and term. */
  private ents: Entry[] = [{ index: 0, term: 0, type: 0, data: Buffer.alloc(0) }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw ErrCompacted;
    if (hi > this.lastIndex() + 1) throw new RaftError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    // Only the dummy entry.
    if (this.ents.length === 1) throw ErrUnavailable;
    const n = limitCount(this.ents, lo - offset, hi - offset, maxSize);
    return this.ents.slice(lo - offset, lo - offset + n);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw ErrCompacted;
    if (i - offset >= this.ents.length) throw ErrUnavailable;
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Replaces the log with a snapshot point (the driver installed the snapshot's data). A snapshot
   * at index 0 is accepted on an empty storage: it only sets the conf state a new member starts
   * from (the driver's bootstrap).
   */
  applySnapshot(snap: Snapshot): void {
    const cur = this.snap.metadata.index;
    const idx = snap.metadata.index;
    const bootstrapPoint = idx === 0 && cur === 0 && this.ents.length === 1;
    if (cur >= idx && !bootstrapPoint) throw ErrSnapOutOfDate;
    this.snap = snap;
    this.ents = [{ index: idx, term: snap.metadata.term, type: 0, data: Buffer.alloc(0) }];
  }

  /** Records a snapshot point at i (≤ last index) with the conf state as of i; the log is kept. */
  createSnapshot(i: number, cs?: ConfState): Snapshot {
    if (i <= this.snap.metadata.index) throw ErrSnapOutOfDate;
    const offset = this.ents[0].index;
    if (i > this.lastIndex()) throw new RaftError(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = {
      metadata: {
        index: i,
        term: this.ents[i - offset].term,
        confState: cs ? { voters: cs.voters.slice(), learners: cs.learners.slice() } : this.snap.metadata.confState,
      },
    };
    return this.snap;
  }

  /** Drops the entries before compactIndex (it stays, as the dummy entry). */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw ErrCompacted;
    if (compactIndex > this.lastIndex()) throw new RaftError(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const ents: Entry[] = [{ index: this.ents[i].index, term: this.ents[i].term, type: 0, data: Buffer.alloc(0) }];
    for (let j = i + 1; j < this.ents.length; j++) ents.push(this.ents[j]);
    this.ents = ents;
  }

  /** Appends entries, truncating any conflicting suffix first; entries already compacted are skipped. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    // Nothing new.
    if (last < first) return;
    let from = 0;
    if (first > entries[0].index) from = first - entries[0].index;
    const offset = entries[from].index - this.ents[0].index;
    if (this.ents.length > offset) {
      this.ents.length = offset;
    } else if (this.ents.length < offset) {
      throw new RaftError(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[from].index}]`);
    }
    for (let j = from; j < entries.length; j++) this.ents.push(entries[j]);
  }
}
