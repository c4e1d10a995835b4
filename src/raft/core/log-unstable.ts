// The part of the raft log not yet handed to the driver for persisting, or handed out but not yet
// acknowledged by advance() (etcd-io/raft's log_unstable.go). entries[i] is at log index
// offset + i; offset may be below the storage's last index, in which case the next write to
// storage truncates it first.
import { RaftError, type Entry, type Snapshot } from './types';

export class Unstable {
  /** An incoming snapshot, until the driver has persisted it. */
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  offset: number;

  constructor(offset: number, private readonly log?: (msg: string) => void) {
    this.offset = offset;
  }

  /** The first index, if there is a snapshot (index + 1). */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  /** The last index, if there is at least one unstable entry or a snapshot. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length !== 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  /** The term of entry i, if this part of the log knows it. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /** Entries up to (i, t) are persisted; drop them, unless they have been replaced meanwhile. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return;
    // If i < offset the term matched the snapshot's; only drop entries when it matched one of ours.
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      // The common case (a leader's proposal, a follower's next append): push in place.
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]);
    } else if (after <= this.offset) {
      this.log?.(`replace the unstable entries from index ${after}`);
      // The log is truncated to before the unstable part: replace it all.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.log?.(`truncate the unstable entries before index ${after}`);
      const kept = this.entries.slice(0, after - this.offset);
      for (let i = 0; i < ents.length; i++) kept.push(ents[i]);
      this.entries = kept;
    }
  }

  /** A copy of entries [lo, hi). */
  slice(lo: number, hi: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftError(`invalid unstable.slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    if (lo < this.offset || hi > upper) throw new RaftError(`unstable.slice[${lo},${hi}) out of bound [${this.offset},${upper}]`);
  }
}
