import BTree from 'sorted-btree';
import { revisionBytes } from './revision';

// The in-memory key index, as etcd's: for each user key, its generations. A generation is one life of
// the key, from creation to deletion; a deletion (tombstone) ends a generation and opens an empty one.
// Revisions are kept flat as [main0, sub0, main1, sub1, ...] to keep memory per key small.

class Generation {
  ver = 0;
  createdMain = 0;
  createdSub = 0;
  revs: number[] = [];

  get empty(): boolean {
    return this.revs.length === 0;
  }
  get count(): number {
    return this.revs.length >> 1;
  }
  main(i: number): number {
    return this.revs[i << 1];
  }
  sub(i: number): number {
    return this.revs[(i << 1) + 1];
  }
  /** Index of the last revision with main <= atRev, or -1. */
  lastAtOrBefore(atRev: number): number {
    for (let i = this.count - 1; i >= 0; i--) if (this.main(i) <= atRev) return i;
    return -1;
  }
}

/** What a key looks like at some revision. Reused by callers to avoid an allocation per key. */
export interface RevHit {
  modMain: number;
  modSub: number;
  createdMain: number;
  version: number;
}

export class KeyIndex {
  modMain = 0;
  modSub = 0;
  gens: Generation[] = [];

  put(main: number, sub: number): void {
    if (main < this.modMain || (main === this.modMain && sub <= this.modSub)) {
      throw new Error(`key index: put revision ${main}/${sub} not after ${this.modMain}/${this.modSub}`);
    }
    // Arrays made as literals get exactly their length; a push onto an empty array would reserve room
    // for 17 elements, and most keys have one generation of one or a few revisions (memory at 1M keys).
    if (this.gens.length === 0) this.gens = [new Generation()];
    const g = this.gens[this.gens.length - 1];
    if (g.empty) {
      g.createdMain = main;
      g.createdSub = sub;
      g.revs = [main, sub];
    } else {
      g.revs.push(main, sub);
    }
    g.ver++;
    this.modMain = main;
    this.modSub = sub;
    this.live = true;
  }

  /** Rebuilds a key from a stored KeyValue seen first at start-up (earlier history may be compacted). */
  restore(createdMain: number, main: number, sub: number, version: number): void {
    const g = new Generation();
    g.createdMain = createdMain;
    g.ver = version;
    g.revs = [main, sub];
    this.gens = [g];
    this.modMain = main;
    this.modSub = sub;
    this.live = true;
  }

  /** Ends the current generation; false if the key is not live. */
  tombstone(main: number, sub: number): boolean {
    if (this.gens.length === 0 || this.gens[this.gens.length - 1].empty) return false;
    this.put(main, sub);
    this.gens = [...this.gens, new Generation()];
    this.live = false;
    return true;
  }

  get empty(): boolean {
    return this.gens.length === 1 && this.gens[0].empty;
  }

  /**
   * True if the key is live (not deleted) now: its last generation is open. Kept as a field (set by put,
   * restore and tombstone; compaction never changes the last generation) so reading it stays in this object.
   */
  live = false;

  /**
   * Whether the key existed at atRev. Counting a range calls this on every key: when nothing changed
   * after atRev it reads this object only (not the generations), which matters at a million keys.
   */
  existsAt(atRev: number, scratch: RevHit): boolean {
    if (this.modMain <= atRev) return this.live;
    return this.get(atRev, scratch);
  }

  /** The key as it was at atRev, written into out; false if it did not exist then. */
  get(atRev: number, out: RevHit): boolean {
    const g = this.findGeneration(atRev);
    if (!g) return false;
    const n = g.lastAtOrBefore(atRev);
    if (n < 0) return false;
    out.modMain = g.main(n);
    out.modSub = g.sub(n);
    out.createdMain = g.createdMain;
    out.version = g.ver - (g.count - n - 1);
    return true;
  }

  private findGeneration(rev: number): Generation | undefined {
    const last = this.gens.length - 1;
    for (let i = last; i >= 0; i--) {
      const g = this.gens[i];
      if (g.empty) continue;
      // A closed generation whose tombstone is at or before rev: the key was deleted at rev.
      if (i !== last && g.main(g.count - 1) <= rev) return undefined;
      if (g.main(0) <= rev) return g;
    }
    return undefined;
  }

  /** All revisions with main > rev (for watch catch-up): flat [main, sub, ...] in order. */
  revisionsAfter(rev: number): number[] {
    const out: number[] = [];
    for (const g of this.gens) {
      for (let i = 0; i < g.count; i++) if (g.main(i) > rev) out.push(g.main(i), g.sub(i));
    }
    return out;
  }

  /**
   * Drops history before atRev, keeping the newest revision at or before it when the key was live then.
   * The revisions kept that are <= atRev are added to keep (as 17-byte latin1 revision keys).
   */
  compact(atRev: number, keep: Set<string>): void {
    if (this.gens.length === 0) return;
    // Skip generations that ended (tombstone) at or before atRev: nothing of them survives.
    let gi = 0;
    while (gi < this.gens.length - 1) {
      const g = this.gens[gi];
      if (g.main(g.count - 1) > atRev) break;
      gi++;
    }
    const g = this.gens[gi];
    if (!g.empty) {
      const n = g.lastAtOrBefore(atRev);
      if (n >= 0) {
        g.revs = g.revs.slice(n << 1);
        keep.add(revisionBytes(g.main(0), g.sub(0)).toString('latin1'));
      }
      // A closed generation reduced to its tombstone: the key was deleted by atRev, drop it all.
      if (g.count === 1 && gi !== this.gens.length - 1) {
        keep.delete(revisionBytes(g.main(0), g.sub(0)).toString('latin1'));
        gi++;
      }
    }
    if (gi > 0) this.gens = this.gens.slice(gi);
  }
}

/** Ordered map from user key (latin1 string: byte order = string order) to its KeyIndex. */
export class TreeIndex {
  // A plain string comparator: the library default checks types on every comparison (the hot loop of ranges).
  private readonly tree = new BTree<string, KeyIndex>(undefined, (a, b) => (a < b ? -1 : a > b ? 1 : 0));

  get size(): number {
    return this.tree.size;
  }

  lookup(key: string): KeyIndex | undefined {
    return this.tree.get(key);
  }

  /** found: the key's KeyIndex if the caller looked it up already (saves a descent of the tree). */
  put(key: string, main: number, sub: number, found?: KeyIndex): void {
    let ki = found ?? this.tree.get(key);
    if (!ki) {
      ki = new KeyIndex();
      this.tree.set(key, ki);
    }
    ki.put(main, sub);
  }

  restore(key: string, createdMain: number, main: number, sub: number, version: number): void {
    let ki = this.tree.get(key);
    if (!ki) {
      ki = new KeyIndex();
      this.tree.set(key, ki);
      ki.restore(createdMain, main, sub, version);
    } else {
      ki.put(main, sub);
    }
  }

  tombstone(key: string, main: number, sub: number): boolean {
    const ki = this.tree.get(key);
    return ki ? ki.tombstone(main, sub) : false;
  }

  get(key: string, atRev: number, out: RevHit): boolean {
    const ki = this.tree.get(key);
    return ki ? ki.get(atRev, out) : false;
  }

  /**
   * Visits keys in [key, end) in order: end undefined means the single key, end '' means no upper bound.
   * The visitor returns false to stop.
   */
  visit(key: string, end: string | undefined, fn: (key: string, ki: KeyIndex) => boolean | void): void {
    if (end === undefined) {
      const ki = this.tree.get(key);
      if (ki) fn(key, ki);
      return;
    }
    if (end !== '' && end <= key) return;
    const BREAK = { break: true as const };
    const hi = end === '' ? undefined : end;
    if (hi === undefined) {
      for (const [k, ki] of this.tree.entries(key)) if (fn(k, ki) === false) return;
      return;
    }
    this.tree.forRange(key, hi, false, (k, ki) => (fn(k, ki) === false ? BREAK : undefined));
  }

  /** Compacts every key at atRev in one go; returns the revisions at or below atRev that must stay in the backend. */
  compact(atRev: number): Set<string> {
    const keep = new Set<string>();
    let after: string | null = null;
    do after = this.compactSome(atRev, keep, after, Infinity);
    while (after !== null);
    return keep;
  }

  /**
   * One step of an incremental compaction at atRev: compacts up to maxKeys keys after the key `after`
   * (null = from the first key), adding what must stay in the backend to keep, and drops the keys left
   * empty. Returns the last key done, to pass to the next step, or null when every key is done.
   *
   * Writes may run between steps: they only add revisions above atRev (the store refuses to compact at
   * a revision above its current one), which compacting leaves alone, so a key done early, a key
   * created meanwhile (before or after `after`) and a key deleted and created again meanwhile all
   * end up as one compaction in one go would leave them. Only compaction removes keys from the tree,
   * and a key is compacted and removed in the same step, so no write can land in between.
   */
  compactSome(atRev: number, keep: Set<string>, after: string | null, maxKeys: number): string | null {
    const batch: [string, KeyIndex][] = [];
    let skipFirst = after !== null;
    // Collect first, then change the tree: deleting while iterating is not allowed.
    for (const [k, ki] of after === null ? this.tree.entries() : this.tree.entries(after)) {
      if (skipFirst) {
        skipFirst = false;
        if (k === after) continue;
      }
      batch.push([k, ki]);
      if (batch.length >= maxKeys) break;
    }
    for (const [k, ki] of batch) {
      ki.compact(atRev, keep);
      if (ki.empty) this.tree.delete(k);
    }
    if (batch.length < maxKeys || batch.length === 0) return null;
    return batch[batch.length - 1][0];
  }
}
