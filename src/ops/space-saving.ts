// Space-Saving (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and top-k elements in data
// streams", 2005) over a stream of key accesses, each a read or a write.
//
// m counters. A key already counted adds 1 to its counter. A new key, when all m counters are in use, takes
// the counter with the smallest count c: its count becomes c + 1 and its error c (it may have been seen up
// to c times while not counted). With N accesses offered since the last reset:
//   - the counts sum to N (once the m counters are in use), so the smallest count, and every error, is <= N/m;
//   - for a counted key: count - error <= true accesses <= count;
//   - a key not counted was accessed at most min count <= N/m times;
//   - so every key accessed more than N/m times is counted.
// Reads and writes are counted apart from the moment the key took its counter: they are lower bounds,
// true reads in [reads, reads + error], true writes in [writes, writes + error].
//
// The counters sit in a min-heap on count (slot ids in an Int32Array, each slot's heap position in another),
// so that replacing the smallest is O(1) to find and an increment is one sift-down, O(log m) at worst,
// and moving a slot in the heap never touches the Map. Memory: m keys (up to maxKeyLength characters each,
// longer keys are counted under their first maxKeyLength characters) plus 5 numbers and a Map entry per slot.

import { flatCopy } from './interner';

export interface SpaceSavingEntry {
  key: string;
  reads: number;
  writes: number;
  /** Overestimation bound: the key's true accesses are in [reads + writes, reads + writes + error]. */
  error: number;
  /** reads + writes + error: the Space-Saving count, an upper bound on the key's true accesses. */
  count: number;
}

export class SpaceSaving {
  // Key -> slot. (An open-addressing table of our own was tried: hashing a 55-character key in JS costs
  // more than V8's native string hash, so a hit got 7x dearer while a miss got only a third cheaper.)
  private readonly slotOf = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly reads: Float64Array;
  private readonly writes: Float64Array;
  private readonly errs: Float64Array;
  private readonly counts: Float64Array;
  /** heap[i] = slot at heap position i; pos[slot] = its position. */
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  private used = 0;
  /** Accesses offered since the last reset (N). */
  total = 0;

  constructor(readonly capacity = 4096, readonly maxKeyLength = 512) {
    if (!(capacity >= 1)) throw new Error('space-saving: capacity must be at least 1');
    this.reads = new Float64Array(capacity);
    this.writes = new Float64Array(capacity);
    this.errs = new Float64Array(capacity);
    this.counts = new Float64Array(capacity);
    this.heap = new Int32Array(capacity);
    this.pos = new Int32Array(capacity);
  }

  /** Counters in use. */
  get size(): number {
    return this.used;
  }

  /** The bound on every error (N/m): floor(total / capacity). */
  get errorBound(): number {
    return Math.floor(this.total / this.capacity);
  }

  /** Counts one access of key: a write if write, else a read. */
  offer(key: string, write: boolean): void {
    let truncated = false;
    if (key.length > this.maxKeyLength) {
      key = key.substring(0, this.maxKeyLength);
      truncated = true;
    }
    this.total++;
    let slot = this.slotOf.get(key);
    if (slot !== undefined) {
      if (write) this.writes[slot]++;
      else this.reads[slot]++;
      this.counts[slot]++;
      this.siftDown(this.pos[slot]);
      return;
    }
    // Keys are kept as given (Buffer.toString makes flat strings); a truncated key is copied so that the
    // counter does not keep the long key alive through a V8 sliced string.
    const stored = truncated ? flatCopy(key) : key;
    if (this.used < this.capacity) {
      slot = this.used++;
      this.keys[slot] = stored;
      this.errs[slot] = 0;
      this.counts[slot] = 1;
      this.reads[slot] = write ? 0 : 1;
      this.writes[slot] = write ? 1 : 0;
      this.heap[slot] = slot;
      this.pos[slot] = slot;
      this.siftUp(slot);
    } else {
      slot = this.heap[0];
      this.slotOf.delete(this.keys[slot]);
      const min = this.counts[slot];
      this.keys[slot] = stored;
      this.errs[slot] = min;
      this.counts[slot] = min + 1;
      this.reads[slot] = write ? 0 : 1;
      this.writes[slot] = write ? 1 : 0;
      this.siftDown(0);
    }
    this.slotOf.set(stored, slot);
  }

  /** The counter of key, or undefined if it holds none (then its true count is <= minCount()). */
  get(key: string): SpaceSavingEntry | undefined {
    if (key.length > this.maxKeyLength) key = key.substring(0, this.maxKeyLength);
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.entry(slot);
  }

  /** The smallest count (0 while some counter is free): an upper bound on any uncounted key's accesses. */
  minCount(): number {
    return this.used < this.capacity ? 0 : this.counts[this.heap[0]];
  }

  /** The n largest counters, largest count first (ties: by key). */
  top(n: number): SpaceSavingEntry[] {
    const slots: number[] = [];
    for (let s = 0; s < this.used; s++) slots.push(s);
    slots.sort((a, b) => this.counts[b] - this.counts[a] || (this.keys[a] < this.keys[b] ? -1 : 1));
    const out: SpaceSavingEntry[] = [];
    for (let i = 0; i < Math.min(n, slots.length); i++) out.push(this.entry(slots[i]));
    return out;
  }

  reset(): void {
    this.slotOf.clear();
    this.keys.length = 0;
    this.used = 0;
    this.total = 0;
  }

  private entry(slot: number): SpaceSavingEntry {
    return {
      key: this.keys[slot],
      reads: this.reads[slot],
      writes: this.writes[slot],
      error: this.errs[slot],
      count: this.counts[slot],
    };
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const counts = this.counts;
    const pos = this.pos;
    const n = this.used;
    const slot = heap[i];
    const c = counts[slot];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let child = l;
      if (r < n && counts[heap[r]] < counts[heap[l]]) child = r;
      const cs = heap[child];
      if (counts[cs] >= c) break;
      heap[i] = cs;
      pos[cs] = i;
      i = child;
    }
    heap[i] = slot;
    pos[slot] = i;
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const counts = this.counts;
    const pos = this.pos;
    const slot = heap[i];
    const c = counts[slot];
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = heap[p];
      if (counts[ps] <= c) break;
      heap[i] = ps;
      pos[ps] = i;
      i = p;
    }
    heap[i] = slot;
    pos[slot] = i;
  }
}
