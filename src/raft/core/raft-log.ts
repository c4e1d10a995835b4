// The raft log as one sequence: the stable part (Storage, what the driver persisted) followed by
// the unstable part (etcd-io/raft's log.go). Differs from etcd 3.4 in one way, on purpose: only
// entries already persisted are handed out for applying (nextEnts stops at the stable prefix), as
// newer etcd-io/raft does, so the state machine never runs ahead of this member's own log.
import { Unstable } from './log-unstable';
import { ErrCompacted, ErrUnavailable, RaftError, type Entry, type Snapshot, type Storage } from './types';
import { entrySize, limitCount } from './util';

export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

export class RaftLog {
  readonly unstable: Unstable;
  /** The highest index known to be durable on a quorum. */
  committed: number;
  /** The highest index handed to the driver for applying. Invariant: applied ≤ committed. */
  applied: number;

  constructor(
    readonly storage: Storage,
    /** Most bytes of entries nextEnts hands out at once (at least one entry). */
    readonly maxNextEntsSize: number = NO_LIMIT,
    private readonly log?: (msg: string) => void,
  ) {
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new Unstable(lastIndex + 1, log);
    // Committed and applied start at the last compaction.
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, unstable.offset=${this.unstable.offset}, len(unstable.Entries)=${this.unstable.entries.length}`;
  }

  /**
   * Appends a leader's entries after (index, logTerm) if the log has that entry; returns the last
   * index of the new entries, or undefined when the log does not match.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewI = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) throw new RaftError(`entry ${ci} conflict with committed entry [committed(${this.committed})]`);
      const offset = index + 1;
      this.append(ci - offset === 0 ? ents : ents.slice(ci - offset));
    }
    this.commitTo(Math.min(committed, lastNewI));
    return lastNewI;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed) throw new RaftError(`after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of ents that conflicts with the log (same index, other term), or
   * the first new one, or 0 if the log has them all.
   */
  findConflict(ents: Entry[]): number {
    for (const ne of ents) {
      if (!this.matchTerm(ne.index, ne.term)) {
        if (ne.index <= this.lastIndex()) {
          this.log?.(`found conflict at index ${ne.index} [existing term: ${this.zeroTermOnErrCompacted(ne.index)}, conflicting term: ${ne.term}]`);
        }
        return ne.index;
      }
    }
    return 0;
  }

  /** The entries not yet persisted (a copy; the driver owns it). */
  unstableEntries(): Entry[] {
    return this.unstable.entries.length === 0 ? [] : this.unstable.entries.slice();
  }

  /**
   * The highest index that may be applied: committed, and persisted on this member (below the
   * unstable part; none while a snapshot waits to be persisted).
   */
  maxAppliableIndex(): number {
    return Math.min(this.committed, this.unstable.offset - 1);
  }

  /** Committed, persisted entries not yet handed out for applying, bounded by maxNextEntsSize. */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    const hi = this.maxAppliableIndex() + 1;
    if (hi > off) return this.slice(off, hi, this.maxNextEntsSize);
    return [];
  }

  hasNextEnts(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.maxAppliableIndex() + 1 > off;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The last index this member has persisted of its current log. */
  stableLastIndex(): number {
    if (this.unstable.snapshot) return 0;
    return this.unstable.entries.length > 0 ? this.unstable.offset - 1 : this.lastIndex();
  }

  commitTo(toCommit: number): void {
    // Never decrease commit.
    if (this.committed < toCommit) {
      if (this.lastIndex() < toCommit) {
        throw new RaftError(`tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`);
      }
      this.committed = toCommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new RaftError(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new RaftError('unexpected error when getting the last term');
    return t;
  }

  /**
   * The term of entry i: 0 outside [first index - 1, last index]; undefined where the storage says
   * compacted or unavailable (etcd returns those errors).
   */
  term(i: number): number | undefined {
    // The valid range is [index of the dummy entry, last index].
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex || i > this.lastIndex()) return 0;
    const ut = this.unstable.maybeTerm(i);
    if (ut !== undefined) return ut;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (err === ErrCompacted || err === ErrUnavailable) return undefined;
      throw err;
    }
  }

  /** The term of entry i, 0 if it is compacted (etcd's zeroTermOnErrCompacted). */
  zeroTermOnErrCompacted(i: number): number {
    const t = this.term(i);
    if (t !== undefined) return t;
    // term() folds ErrUnavailable in too; storage only says that past its last index, which
    // term() has excluded, so this is compaction.
    return 0;
  }

  /** Entries from i to the end, bounded by maxSize; throws ErrCompacted. */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  allEntries(): Entry[] {
    for (;;) {
      try {
        return this.entries(this.firstIndex(), NO_LIMIT);
      } catch (err) {
        // Retry after a racing compaction.
        if (err !== ErrCompacted) throw err;
      }
    }
  }

  /**
   * Whether a log ending at (lastI, term) is at least as up to date as this one: a later last term,
   * or the same last term and at least as long.
   */
  isUpToDate(lastI: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lastI >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.term(i);
    return t !== undefined && t === term;
  }

  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnErrCompacted(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.log?.(`log [${this.toString()}] starts to restore snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries [lo, hi), at most maxSize bytes (at least one); throws ErrCompacted if lo is compacted. */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const u = this.unstable;
    let ents: Entry[] | undefined;
    if (lo < u.offset) {
      const storedHi = Math.min(hi, u.offset);
      let stored: Entry[];
      try {
        stored = this.storage.entries(lo, storedHi, maxSize);
      } catch (err) {
        if (err === ErrUnavailable) throw new RaftError(`entries[${lo}:${storedHi}) is unavailable from storage`);
        throw err;
      }
      // The size limit cut the stored part short.
      if (stored.length < storedHi - lo) return stored;
      // A copy before extending it: the storage's answer is not ours to change.
      ents = hi > u.offset ? stored.slice() : stored;
    }
    if (hi > u.offset) {
      const from = Math.max(lo, u.offset) - u.offset;
      const to = hi - u.offset;
      if (!ents) {
        const n = limitCount(u.entries, from, to, maxSize);
        return u.entries.slice(from, from + n);
      }
      // Continue the stored part (never empty here) with what still fits.
      let size = 0;
      for (let i = 0; i < ents.length; i++) size += entrySize(ents[i]);
      for (let i = from; i < to; i++) {
        size += entrySize(u.entries[i]);
        if (size > maxSize) break;
        ents.push(u.entries[i]);
      }
      return ents;
    }
    return ents ?? [];
  }

  /** firstIndex ≤ lo ≤ hi ≤ lastIndex + 1, or ErrCompacted when lo is below the first index. */
  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftError(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw ErrCompacted;
    const length = this.lastIndex() + 1 - fi;
    if (hi > fi + length) throw new RaftError(`slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
