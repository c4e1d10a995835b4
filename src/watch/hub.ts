import type { KeyValue } from '../mvcc/key-value';
import { decodeKeyValue, encodeKeyValue } from '../mvcc/key-value';
import type { Change, KVStore } from '../mvcc/kv-store';
import { isTombstone, readRevision, revisionBytes } from '../mvcc/revision';
import { EventRing, type RingEntry } from './event-ring';

// The watch hub, after etcd's watchable store. Synced watchers get each write's events as it is
// applied; unsynced ones (started in the past, or moved aside as slow) catch up from history in
// batches — from a ring of recent events in memory, else from the backend — and then join the
// synced set. A watcher whose consumer cannot take more is a victim: it stops getting live events
// and is caught up from history once its consumer drains. Nothing blocks the writers.

export const EventType = { PUT: 0, DELETE: 1 } as const;

export interface WatchEvent {
  type: number;
  /** For a DELETE: the key, with mod_revision = the deleting revision. */
  kv: KeyValue;
  /** The KeyValue's protobuf bytes, encoded once and shared by every watcher that gets the event. */
  encoded?: Buffer;
  /** The whole mvccpb.Event (without prev_kv), likewise encoded once. */
  eventBytes?: Buffer;
}

export interface WatchBatch {
  watcher: Watcher;
  events: WatchEvent[];
  /** The header revision: the write's revision for live events, the store's for catch-up. */
  revision: number;
  compactRevision?: number;
}

/** Where a watcher's responses go (a watch stream). send returns false when it cannot take more. */
export interface WatchSink {
  send(batch: WatchBatch): boolean;
}

export interface WatchOptions {
  noPut?: boolean;
  noDelete?: boolean;
}

export class Watcher {
  /** The first revision this watcher has not been sent yet. */
  minRev: number;
  victim = false;
  canceled = false;

  constructor(
    /** int64 on the wire; ids above 2^53 must round-trip exactly. */
    readonly id: bigint,
    /** latin1 strings; end undefined = the single key, '' = every key from key on. */
    readonly key: string,
    readonly end: string | undefined,
    startRev: number,
    readonly opts: WatchOptions,
    readonly sink: WatchSink,
  ) {
    this.minRev = startRev;
  }

  matches(key: string): boolean {
    if (this.end === undefined) return key === this.key;
    return key >= this.key && (this.end === '' || key < this.end);
  }

  wants(e: WatchEvent): boolean {
    return e.type === EventType.PUT ? !this.opts.noPut : !this.opts.noDelete;
  }
}

/** Synced watchers, found by the keys they watch: single keys by map, ranges grouped by their bounds. */
class WatcherGroup {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly ranges = new Map<string, { key: string; end: string; watchers: Set<Watcher> }>();
  size = 0;

  add(w: Watcher): void {
    this.size++;
    if (w.end === undefined) {
      let set = this.byKey.get(w.key);
      if (!set) this.byKey.set(w.key, (set = new Set()));
      set.add(w);
      return;
    }
    const rk = `${w.key}\u0000${w.end}`;
    let r = this.ranges.get(rk);
    if (!r) this.ranges.set(rk, (r = { key: w.key, end: w.end, watchers: new Set() }));
    r.watchers.add(w);
  }

  delete(w: Watcher): boolean {
    if (w.end === undefined) {
      const set = this.byKey.get(w.key);
      if (!set?.delete(w)) return false;
      if (set.size === 0) this.byKey.delete(w.key);
    } else {
      const rk = `${w.key}\u0000${w.end}`;
      const r = this.ranges.get(rk);
      if (!r?.watchers.delete(w)) return false;
      if (r.watchers.size === 0) this.ranges.delete(rk);
    }
    this.size--;
    return true;
  }

  /** Every watcher, and the group emptied. */
  takeAll(): Watcher[] {
    const out: Watcher[] = [];
    for (const set of this.byKey.values()) out.push(...set);
    for (const r of this.ranges.values()) out.push(...r.watchers);
    this.byKey.clear();
    this.ranges.clear();
    this.size = 0;
    return out;
  }

  has(w: Watcher): boolean {
    if (w.end === undefined) return this.byKey.get(w.key)?.has(w) ?? false;
    return this.ranges.get(`${w.key}\u0000${w.end}`)?.watchers.has(w) ?? false;
  }

  /** Calls fn for every watcher whose range holds key: work per distinct range and per match. */
  forKey(key: string, fn: (w: Watcher) => void): void {
    const set = this.byKey.get(key);
    if (set) for (const w of set) fn(w);
    for (const r of this.ranges.values()) {
      if (key >= r.key && (r.end === '' || key < r.end)) for (const w of r.watchers) fn(w);
    }
  }
}

export interface HubOptions {
  /** Recent events kept in memory for catching up without reading the backend. */
  ringEvents?: number;
  /** Most revisions sent to one watcher in one catch-up response (etcd's watchBatchMaxRevs). */
  maxRevsPerResponse?: number;
  /** Pause between catch-up rounds while watchers are unsynced. */
  syncIntervalMs?: number;
  /** Key and value bytes of recent events kept in memory (with ringEvents, whichever is reached first). */
  ringBytes?: number;
  /**
   * Key and value bytes in one catch-up response (at least one revision's events): with large values,
   * maxRevsPerResponse revisions alone could make one response of 1000 × 1.5 MiB. Default 2 MiB.
   */
  maxBytesPerResponse?: number;
  /** Key and value bytes read from the backend in one catch-up round (at least one revision). Default 4 MiB. */
  maxBytesPerBackendRead?: number;
}

/** The key and value bytes of an event: what the ring and the catch-up bounds count. */
function eventSize(e: WatchEvent): number {
  return e.kv.key.length + (e.kv.value?.length ?? 0);
}

export class WatchHub {
  private readonly synced = new WatcherGroup();
  private readonly unsynced = new Set<Watcher>();
  private ring: EventRing;
  private readonly ringEvents: number;
  private readonly maxRevs: number;
  private readonly syncIntervalMs: number;
  private readonly ringBytes: number;
  private readonly maxBytes: number;
  private readonly maxReadBytes: number;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing = false;
  private closed = false;

  constructor(private readonly store: KVStore, opts: HubOptions = {}) {
    this.ringEvents = opts.ringEvents ?? 20_000;
    // 32 MiB of keys and values; the encodings cached on an event as it is sent can add two more copies.
    this.ringBytes = opts.ringBytes ?? 32 * 1024 * 1024;
    this.ring = new EventRing(this.ringEvents, this.ringBytes);
    this.maxRevs = opts.maxRevsPerResponse ?? 1000;
    this.syncIntervalMs = opts.syncIntervalMs ?? 100;
    // etcd sends up to 1000 revisions in one catch-up response whatever their size (its gRPC send limit
    // is 2 GiB). 2 MiB keeps etcd's responses (and its fragments) for all but large values, and bounds
    // what one response holds when the values are large (1000 × 1.5 MiB would be one of 1.5 GB).
    this.maxBytes = opts.maxBytesPerResponse ?? 2 * 1024 * 1024;
    this.maxReadBytes = opts.maxBytesPerBackendRead ?? 4 * 1024 * 1024;
    store.onChanges((changes, rev) => this.notify(changes, rev));
  }

  get watcherCount(): number {
    return this.synced.size + this.unsynced.size;
  }

  /**
   * Adds a watcher. startRev 0 means "from the next write"; a past revision replays history from it;
   * a future one waits for it.
   */
  watch(id: bigint, key: string, end: string | undefined, startRev: number, opts: WatchOptions, sink: WatchSink): Watcher {
    const cur = this.store.currentRev;
    const synced = startRev === 0 || startRev > cur;
    const w = new Watcher(id, key, end, synced ? Math.max(cur + 1, startRev) : startRev, opts, sink);
    if (synced) this.synced.add(w);
    else {
      this.unsynced.add(w);
      this.scheduleSync(0);
    }
    return w;
  }

  /** True once w gets live events (caught up, not set aside); false while it catches up or is a victim. */
  isSynced(w: Watcher): boolean {
    return this.synced.has(w);
  }

  cancel(w: Watcher): void {
    w.canceled = true;
    if (!this.synced.delete(w)) this.unsynced.delete(w);
  }

  /** A progress notification for w if it is caught up (etcd's RequestProgress): an empty batch. */
  requestProgress(w: Watcher): void {
    // As etcd's: only a synced watcher is told the current revision (one catching up gets events first).
    if (w.canceled || !this.synced.has(w)) return;
    w.sink.send({ watcher: w, events: [], revision: this.store.currentRev });
  }

  /** The consumer of these watchers can take more again: catch them up from history. */
  resume(watchers: Iterable<Watcher>): void {
    let any = false;
    for (const w of watchers) {
      if (!w.victim || w.canceled) continue;
      w.victim = false;
      this.unsynced.add(w);
      any = true;
    }
    if (any) this.scheduleSync(0);
  }

  private notify(changes: readonly Change[], rev: number): void {
    const events: WatchEvent[] = new Array(changes.length);
    let bytes = 0;
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i];
      events[i] = { type: c.deleted ? EventType.DELETE : EventType.PUT, kv: c.kv };
      bytes += eventSize(events[i]);
    }
    this.ring.push({ rev, events, bytes });
    if (this.synced.size === 0) return;
    // Gather each watcher's events of this revision, then send them together.
    let batches: Map<Watcher, WatchEvent[]> | undefined;
    for (const e of events) {
      this.synced.forKey(e.kv.key.toString('latin1'), (w) => {
        if (w.minRev > rev || !w.wants(e)) return;
        batches ??= new Map();
        const list = batches.get(w);
        if (list) list.push(e);
        else batches.set(w, [e]);
      });
    }
    if (!batches) return;
    for (const [w, evs] of batches) {
      if (w.sink.send({ watcher: w, events: evs, revision: rev })) {
        w.minRev = rev + 1;
      } else {
        // Its consumer is full: set it aside; it is caught up from history once it drains.
        w.minRev = rev;
        w.victim = true;
        this.synced.delete(w);
      }
    }
  }

  private scheduleSync(delay: number): void {
    if (this.syncTimer || this.syncing || this.closed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.syncUnsynced();
    }, delay);
  }

  /** One catch-up round over the unsynced watchers. */
  private async syncUnsynced(): Promise<void> {
    if (this.syncing || this.closed) return;
    this.syncing = true;
    try {
      const compactRev = this.store.compactMainRev;
      const oldestInRing = this.ring.length ? this.ring.at(0).rev : this.store.currentRev + 1;
      const fromBackend: Watcher[] = [];
      for (const w of [...this.unsynced]) {
        if (w.canceled) {
          this.unsynced.delete(w);
          continue;
        }
        if (w.minRev < compactRev) {
          // History it asks for is gone: tell it, and end it (etcd's compacted response).
          if (w.sink.send({ watcher: w, events: [], revision: 0, compactRevision: compactRev })) {
            this.unsynced.delete(w);
            w.canceled = true;
          }
          continue;
        }
        if (w.minRev < 1) {
          // A negative start revision: etcd's backend range from it finds nothing (the revision wraps
          // around as unsigned), so the watcher simply goes live.
          w.minRev = this.store.currentRev + 1;
          this.unsynced.delete(w);
          this.synced.add(w);
        } else if (w.minRev >= oldestInRing) this.catchUpFromRing(w);
        else fromBackend.push(w);
      }
      if (fromBackend.length) await this.catchUpFromBackend(fromBackend);
    } finally {
      this.syncing = false;
    }
    if (this.unsynced.size > 0) this.scheduleSync(this.syncIntervalMs);
  }

  /** Synchronous: no write can land between reading the ring and joining the synced set. */
  private catchUpFromRing(w: Watcher): void {
    const cur = this.store.currentRev;
    let start = this.ring.search(w.minRev);
    let events: WatchEvent[] = [];
    let revs = 0;
    let bytes = 0;
    let lastRev = w.minRev - 1;
    for (; start < this.ring.length && revs < this.maxRevs && bytes < this.maxBytes; start++) {
      const entry = this.ring.at(start);
      let any = false;
      // At the compacted revision itself only what compaction keeps is still history: its puts. (The
      // backend no longer has the deletes; the ring must not give more than the backend would.)
      const compacted = entry.rev <= this.store.compactMainRev;
      for (const e of entry.events) {
        if (compacted && e.type === EventType.DELETE) continue;
        if (w.matches(e.kv.key.toString('latin1')) && w.wants(e)) {
          events.push(e);
          bytes += eventSize(e);
          any = true;
        }
      }
      if (any) revs++;
      lastRev = entry.rev;
    }
    const done = start >= this.ring.length;
    if (events.length && !w.sink.send({ watcher: w, events, revision: cur })) {
      this.unsynced.delete(w);
      w.victim = true;
      return;
    }
    events = [];
    w.minRev = done ? cur + 1 : lastRev + 1;
    if (done) {
      this.unsynced.delete(w);
      this.synced.add(w);
    }
  }

  /**
   * Reads revisions [min minRev, current] from the backend, in slices of at most maxRevs revisions and
   * (whole revisions) about maxReadBytes, and sends each watcher its events in responses of at most
   * maxRevs revisions and maxBytes. The watchers stay unsynced: the next round finishes from the ring.
   */
  private async catchUpFromBackend(watchers: Watcher[]): Promise<void> {
    const cur = this.store.currentRev;
    const from = Math.min(...watchers.map((w) => w.minRev));
    let to = Math.min(cur, from + this.maxRevs - 1);
    const entries: RingEntry[] = [];
    let readBytes = 0;
    await this.store.backend.scan('key', revisionBytes(from, 0), revisionBytes(to + 1, 0), (rk, v) => {
      const { main } = readRevision(rk);
      const last = entries[entries.length - 1];
      // Stop between revisions once the slice is big enough; the rest is read next round.
      if (last && last.rev !== main && readBytes >= this.maxReadBytes) {
        to = last.rev;
        return false;
      }
      const kv = decodeKeyValue(Buffer.from(v));
      let ev: WatchEvent;
      if (isTombstone(rk)) ev = { type: EventType.DELETE, kv: { ...kv, modRevision: main } };
      else ev = { type: EventType.PUT, kv, encoded: Buffer.from(v) };
      readBytes += rk.length + v.length;
      if (last && last.rev === main) last.events.push(ev);
      else entries.push({ rev: main, events: [ev] });
    });
    for (const w of watchers) {
      if (w.canceled || !this.unsynced.has(w)) continue;
      if (w.minRev < this.store.compactMainRev) continue; // compacted meanwhile: next round says so
      let events: WatchEvent[] = [];
      let bytes = 0;
      let lastRev = w.minRev - 1;
      let stopped = false;
      for (const entry of entries) {
        if (entry.rev < w.minRev) continue;
        if (bytes >= this.maxBytes) {
          stopped = true;
          break;
        }
        for (const e of entry.events) {
          if (w.matches(e.kv.key.toString('latin1')) && w.wants(e)) {
            events.push(e);
            bytes += eventSize(e);
          }
        }
        lastRev = entry.rev;
      }
      if (events.length && !w.sink.send({ watcher: w, events, revision: cur })) {
        this.unsynced.delete(w);
        w.victim = true;
        continue;
      }
      events = [];
      // A watcher cut short by the response bound resumes after what it was sent; the others after the slice.
      w.minRev = Math.max(w.minRev, stopped ? lastRev + 1 : to + 1);
    }
  }

  /**
   * The store was replaced by a raft snapshot: the recent events no longer describe it, so every
   * watcher catches up from the new backend (or is told its history was compacted), as etcd's
   * watchableStore.Restore moves its synced watchers to unsynced.
   */
  restore(): void {
    this.ring = new EventRing(this.ringEvents);
    for (const w of this.synced.takeAll()) this.unsynced.add(w);
    this.scheduleSync(0);
  }

  close(): void {
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
  }
}

/** The KeyValue bytes of an event (encoded once, then shared). */
export function eventKvBytes(e: WatchEvent): Buffer {
  return (e.encoded ??= encodeKeyValue(e.kv));
}
