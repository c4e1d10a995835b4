import type { WatchEvent } from './hub';

/** The events of one revision. */
export interface RingEntry {
  rev: number;
  events: WatchEvent[];
  /** The key and value bytes of its events (what the ring's byte budget counts). */
  bytes?: number;
}

/**
 * The events of the most recent revisions, oldest first, up to a number of events and a number of key
 * and value bytes (writers choose the value sizes: 20k events of 1.5 MiB would otherwise hold 30 GB): a
 * circular buffer, so dropping the oldest revision is O(1) however long the ring is (an array's shift()
 * is not). What falls out is read from the backend by the watchers that still need it.
 */
export class EventRing {
  private buf: (RingEntry | undefined)[] = new Array(1024);
  private head = 0;
  /** Revisions held. */
  length = 0;
  /** Events held. */
  private events = 0;
  /** Key and value bytes held. */
  bytes = 0;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes = Infinity,
  ) {}

  /** The i-th oldest revision held. */
  at(i: number): RingEntry {
    return this.buf[(this.head + i) & (this.buf.length - 1)]!;
  }

  push(e: RingEntry): void {
    if (this.length === this.buf.length) this.grow();
    this.buf[(this.head + this.length) & (this.buf.length - 1)] = e;
    this.length++;
    this.events += e.events.length;
    this.bytes += e.bytes ?? 0;
    while ((this.events > this.maxEvents || this.bytes > this.maxBytes) && this.length > 1) {
      const old = this.buf[this.head]!;
      this.buf[this.head] = undefined;
      this.head = (this.head + 1) & (this.buf.length - 1);
      this.length--;
      this.events -= old.events.length;
      this.bytes -= old.bytes ?? 0;
    }
  }

  /** Index of the oldest revision held that is >= rev (length if none). */
  search(rev: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.at(mid).rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private grow(): void {
    const next: (RingEntry | undefined)[] = new Array(this.buf.length * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.at(i);
    this.buf = next;
    this.head = 0;
  }
}
