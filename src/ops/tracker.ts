// Ops analytics (issue #19): what the keys and the requests look like, in bounded memory, without I/O or timers.
//
// Two kinds of input, from two places:
//   - requests (the server pipeline, on every path: KV, each Txn, Watch creation, lease-attached deletes,
//     the gateway): onRange, onPut, onDeleteRange, onTxn, onWatchCreate, onLeaseDelete, each with the client
//     handle of its connection (clientConnected / clientDisconnected). These feed hottest, requests, clients.
//   - data (the applier / mvcc, for every key a write changes, replay and followers included): keyPut and
//     keyDeleted with the previous value size. These keep the namespace counters exact.
// Per-key state (the key + value size of the live version, and the epoch of its last read or write) lives in
// the caller's key index, two small integers per key; longest and cold are computed from it when a report
// walks the live keys through a LiveKeySource.
//
// Bounds (memory independent of the number of keys and of requests):
//   hottest    Space-Saving, hotCapacity counters: error <= N/hotCapacity (N = accesses since reset);
//   requests   exact counts per (verb, resource) for up to maxResources resources since reset; further
//              resources count in the '(other)' row: at most 11 verbs x (maxResources + 2) rows;
//   clients    exact per address for up to maxClients addresses; further addresses share the '(other)' row;
//   namespaces exact; one row (2 numbers and the name) per namespace ever seen with a live key;
//   longest    exact at report time: a walk over the live keys keeps the top N in a heap of N;
//   cold       exact at report time (to the epoch's 1 s resolution): the same walk; groups of keys sharing a
//              prefix are contiguous in key order, so only the groups open on the current key (a stack, depth
//              <= 3) and a heap of the top N are held.

import { CLUSTER_SCOPED, KeyLayout, NO_PREFIX, NOT_KUBE, OTHER, VERB_NAMES, Verb, type TxnLike, type TxnOpLike, txnFirstKey } from './layout';
import { RangeInterner, flatCopy } from './interner';
import { SpaceSaving } from './space-saving';

/** A client handle for requests with no connection (lease expiry, internal requests): not counted per client. */
export const NO_CLIENT = -1;
/** prevValueBytes when the key had no live version before the write. */
export const NOT_LIVE = -1;

export interface OpsTrackerOptions {
  /**
   * Milliseconds; only differences are used (idle times, the time since reset). Default performance.now
   * (monotonic, and cheaper than Date.now: ~50 against ~75 ns a read on the 2-core CI machine).
   */
  clock?: () => number;
  /** Kube key prefix, kube-apiserver's --etcd-prefix ('/registry'; a '/' is added when missing). */
  prefix?: string;
  /** Resources whose names take two segments besides API groups: ['services']. */
  twoSegmentResources?: readonly string[];
  /** Space-Saving counters for hottest: 4096. */
  hotCapacity?: number;
  /** Longest key prefix the hottest sketch keeps per key: 512 characters. */
  maxKeyLength?: number;
  /** Distinct resources in the requests table before '(other)': 256. */
  maxResources?: number;
  /** Distinct client addresses before '(other)': 4096. */
  maxClients?: number;
  /**
   * Whether each request call reads the clock to advance the epoch (true). With false the caller calls
   * tick() itself from a timer it has anyway (the raft tick, every --heartbeat-interval) and saves a clock
   * read per request (~50-70 ns on the 2-core CI machine).
   */
  tickPerRequest?: boolean;
}

/**
 * The live keys of the store, walked by a report. The mvcc key index provides it over its ordered map.
 * scan visits up to max live keys in ascending key order, starting after `after` (undefined: from the
 * first key), calling fn with the key, its size (key + value bytes of the live version, what keyPut was
 * told) and its access epoch (the last epoch stored by the caller on a read or write; 0 if none since start).
 * It returns the last key visited, or undefined when it visited none (the walk is over).
 */
export interface LiveKeySource {
  scan(after: string | undefined, max: number, fn: (key: string, bytes: number, epoch: number) => void): string | undefined;
}

export interface ReportOptions {
  /** Most rows per array: 10. */
  top?: number;
  /** Keys with no read or write for this many seconds are cold: 3600. */
  coldAfterSeconds?: number;
}

export interface LongestRow {
  key: string;
  bytes: number;
}
export interface HotRow {
  key: string;
  reads: number;
  writes: number;
  /** True reads are in [reads, reads + error], true writes in [writes, writes + error]. */
  error: number;
}
export interface NamespaceRow {
  namespace: string;
  keys: number;
  bytes: number;
}
export interface RequestRow {
  verb: string;
  resource: string;
  count: number;
}
export interface ClientRow {
  address: string;
  /** Connections open now. */
  connections: number;
  requests: number;
  /** Connections opened since start or the last reset. */
  opened: number;
}
export interface ColdRow {
  prefix: string;
  /** Cold keys under the prefix, and their key + value bytes. */
  keys: number;
  bytes: number;
  /** The least idle time of those keys: each of them has been idle at least this long. */
  idleSeconds: number;
  maxIdleSeconds: number;
  /** All live keys under the prefix (cold or not). */
  liveKeys: number;
}

export interface OpsReport {
  longest: LongestRow[];
  hottest: HotRow[];
  namespaces: NamespaceRow[];
  requests: RequestRow[];
  clients: ClientRow[];
  cold: ColdRow[];
  /** Accesses counted by the hottest sketch since the reset, and the bound on every error (N/m). */
  hotAccesses: number;
  hotErrorBound: number;
  coldAfterSeconds: number;
  /** Seconds since the start or the last reset (hottest, requests, clients count over this). */
  sinceResetSeconds: number;
  /** Live keys the walk visited (0 without a source: longest and cold are then empty). */
  scannedKeys: number;
}

const SECOND_MS = 1000;

export class OpsTracker {
  readonly layout: KeyLayout;
  private readonly clock: () => number;
  private readonly startMs: number;
  private resetMs: number;
  /**
   * The epoch (whole seconds since the tracker started, from 1) at the last tick(). The caller stores it in
   * the key index entry of each key a request reads or writes; 0 there means "not since start".
   */
  epoch = 1;

  private readonly hot: SpaceSaving;
  private readonly tickPerRequest: boolean;

  // requests: counts[verb * cols + col]; col = resource slot, then OTHER, then NOT_KUBE.
  private readonly resources: RangeInterner;
  private readonly reqCols: number;
  private readonly reqCounts: Float64Array;

  // clients
  private readonly maxClients: number;
  private readonly clientSlot = new Map<string, number>();
  private readonly clientNames: string[] = [];
  private readonly connections: Float64Array;
  private readonly opened: Float64Array;
  private readonly clientRequests: Float64Array;
  private readonly freeClients: number[] = [];

  // namespaces: slot 0 = cluster-scoped, slot 1 = not kube.
  private readonly namespaces = new RangeInterner(Number.MAX_SAFE_INTEGER, 1024, 12);
  private nsKeys = new Float64Array(256);
  private nsBytes = new Float64Array(256);

  constructor(opts: OpsTrackerOptions = {}) {
    this.clock = opts.clock ?? performance.now.bind(performance);
    this.layout = new KeyLayout(opts.prefix ?? '/registry/', opts.twoSegmentResources ?? ['services']);
    this.startMs = this.resetMs = this.clock();
    this.tickPerRequest = opts.tickPerRequest ?? true;
    this.hot = new SpaceSaving(opts.hotCapacity ?? 4096, opts.maxKeyLength ?? 512);
    const maxResources = opts.maxResources ?? 256;
    this.resources = new RangeInterner(maxResources, maxResources * 2);
    this.reqCols = maxResources + 2;
    this.reqCounts = new Float64Array(VERB_NAMES.length * this.reqCols);
    this.maxClients = opts.maxClients ?? 4096;
    this.connections = new Float64Array(this.maxClients + 1);
    this.opened = new Float64Array(this.maxClients + 1);
    this.clientRequests = new Float64Array(this.maxClients + 1);
    this.namespaces.internString(CLUSTER_SCOPED);
    this.namespaces.internString(NOT_KUBE);
  }

  // ---- time ----

  /** Reads the clock and returns the current epoch (also kept in this.epoch). Call once per request. */
  tick(): number {
    const e = 1 + Math.floor((this.clock() - this.startMs) / SECOND_MS);
    if (e > this.epoch) this.epoch = e;
    return this.epoch;
  }

  // ---- clients ----

  /** A connection from address (an IP, no port) opened; returns its handle for the per-request calls. */
  clientConnected(address: string): number {
    let slot = this.clientSlot.get(address);
    if (slot === undefined) {
      if (this.freeClients.length > 0) slot = this.freeClients.pop()!;
      else if (this.clientNames.length < this.maxClients) slot = this.clientNames.length;
      else slot = this.maxClients;
      if (slot < this.maxClients) {
        this.clientNames[slot] = address;
        this.clientSlot.set(address, slot);
      }
    }
    this.connections[slot]++;
    this.opened[slot]++;
    return slot;
  }

  /** The connection with this handle closed. */
  clientDisconnected(client: number): void {
    if (client >= 0 && this.connections[client] > 0) this.connections[client]--;
  }

  // ---- requests (server pipeline) ----

  /** A Range: isRange when it has a range end (list, or count with countOnly), else one key (get). */
  onRange(key: string, isRange: boolean, countOnly: boolean, client: number): void {
    if (this.tickPerRequest) this.tick();
    const layout = this.layout;
    layout.parse(key);
    this.count(layout.rangeVerb(isRange, countOnly), key);
    this.hot.offer(key, false);
    if (client >= 0) this.clientRequests[client]++;
  }

  /** A plain Put. */
  onPut(key: string, client: number): void {
    if (this.tickPerRequest) this.tick();
    this.layout.parse(key);
    this.count(Verb.put, key);
    this.hot.offer(key, true);
    if (client >= 0) this.clientRequests[client]++;
  }

  /** A plain DeleteRange (one key, or a range when isRange). */
  onDeleteRange(key: string, isRange: boolean, client: number): void {
    if (this.tickPerRequest) this.tick();
    this.layout.parse(key);
    this.count(Verb.delete, key);
    this.hot.offer(key, true);
    if (client >= 0) this.clientRequests[client]++;
  }

  /**
   * A Txn, after it ran: succeeded says which branch ran. Counts one request with kube's verb when it has
   * one of kube's shapes (create, update, delete), else 'txn'; then each op of the branch that ran as a read
   * (range) or a write (put, delete) of its key for hottest. Nested txns count as requests, not per op.
   */
  onTxn(txn: TxnLike, succeeded: boolean, client: number): void {
    if (this.tickPerRequest) this.tick();
    const layout = this.layout;
    const first = txnFirstKey(txn);
    let firstKey = '';
    if (first === undefined) {
      this.reqCounts[Verb.txn * this.reqCols + this.reqCols - 1]++;
    } else {
      firstKey = first.toString('latin1');
      layout.parse(firstKey);
      this.count(layout.txnVerb(txn), firstKey);
    }
    const ops = succeeded ? txn.success : txn.failure;
    for (let i = 0; i < ops.length; i++) this.txnOp(ops[i], first, firstKey);
    if (client >= 0) this.clientRequests[client]++;
  }

  /** A watch created on key (a prefix or range when isRange). */
  onWatchCreate(key: string, isRange: boolean, client: number): void {
    if (this.tickPerRequest) this.tick();
    void isRange;
    this.layout.parse(key);
    this.count(Verb.watch, key);
    if (client >= 0) this.clientRequests[client]++;
  }

  /** A key deleted because its lease ended (expiry or revoke): one 'expire' request and a write. */
  onLeaseDelete(key: string): void {
    if (this.tickPerRequest) this.tick();
    this.layout.parse(key);
    this.count(Verb.expire, key);
    this.hot.offer(key, true);
  }

  // ---- data (applier / mvcc) ----

  /**
   * A key written: valueBytes its new value's size, prevValueBytes the previous live value's size or
   * NOT_LIVE (-1). The caller stores key.length + valueBytes as the key's size in its key index entry.
   */
  keyPut(key: string, valueBytes: number, prevValueBytes: number): void {
    const ns = this.namespaceSlot(key);
    if (prevValueBytes < 0) {
      this.nsKeys[ns]++;
      this.nsBytes[ns] += key.length + valueBytes;
    } else {
      this.nsBytes[ns] += valueBytes - prevValueBytes;
    }
  }

  /** A live key deleted (DeleteRange, a txn's delete, a lease's end), prevValueBytes its value's size. */
  keyDeleted(key: string, prevValueBytes: number): void {
    const ns = this.namespaceSlot(key);
    this.nsKeys[ns]--;
    this.nsBytes[ns] -= key.length + prevValueBytes;
  }

  /**
   * Recomputes the namespace counters from the live keys (after start-up's index rebuild, or a snapshot
   * replacing the store): keyPut is not called for keys restored from the backend.
   */
  seedNamespaces(source: LiveKeySource): void {
    this.nsKeys.fill(0);
    this.nsBytes.fill(0);
    let after: string | undefined;
    const visit = (key: string, bytes: number): void => {
      const ns = this.namespaceSlot(key);
      this.nsKeys[ns]++;
      this.nsBytes[ns] += bytes;
    };
    while ((after = source.scan(after, 65536, visit)) !== undefined);
  }

  // ---- reports ----

  /** Zeroes hottest, requests and clients' request counts (namespaces, longest and cold are state, not counts). */
  reset(): void {
    this.hot.reset();
    this.resources.clear();
    this.reqCounts.fill(0);
    for (let slot = 0; slot < this.clientNames.length; slot++) {
      const name = this.clientNames[slot];
      if (name === undefined) continue;
      if (this.connections[slot] === 0) {
        this.clientSlot.delete(name);
        this.clientNames[slot] = undefined as unknown as string;
        this.freeClients.push(slot);
      }
    }
    this.clientRequests.fill(0);
    this.opened.fill(0);
    this.resetMs = this.clock();
  }

  /** The whole report at once (walks every live key when a source is given: O(keys)). */
  report(opts: ReportOptions = {}, source?: LiveKeySource): OpsReport {
    const job = this.startReport(opts, source);
    while (!job.step(65536));
    return job.result();
  }

  /**
   * A report in steps, for a caller that spreads the walk over event-loop turns: step(maxKeys) until it
   * returns true, then result(). Keys written between steps are seen as the walk finds them.
   */
  startReport(opts: ReportOptions = {}, source?: LiveKeySource): ReportJob {
    return new ReportJob(this, opts.top ?? 10, opts.coldAfterSeconds ?? 3600, source);
  }

  /** The parts that need no walk. */
  countsReport(top: number): Pick<OpsReport, 'hottest' | 'namespaces' | 'requests' | 'clients' | 'hotAccesses' | 'hotErrorBound' | 'sinceResetSeconds'> {
    const hottest: HotRow[] = this.hot.top(top).map((e) => ({ key: e.key, reads: e.reads, writes: e.writes, error: e.error }));

    const namespaces: NamespaceRow[] = [];
    for (let s = 0; s < this.namespaces.size; s++) {
      if (this.nsKeys[s] > 0) namespaces.push({ namespace: this.namespaces.names[s], keys: this.nsKeys[s], bytes: this.nsBytes[s] });
    }
    namespaces.sort((a, b) => b.keys - a.keys || b.bytes - a.bytes || cmp(a.namespace, b.namespace));

    const requests: RequestRow[] = [];
    const cols = this.reqCols;
    for (let v = 0; v < VERB_NAMES.length; v++) {
      for (let c = 0; c < cols; c++) {
        const n = this.reqCounts[v * cols + c];
        if (n === 0) continue;
        const resource = c < this.resources.size ? this.resources.names[c] : c === cols - 1 ? NOT_KUBE : OTHER;
        requests.push({ verb: VERB_NAMES[v], resource, count: n });
      }
    }
    requests.sort((a, b) => b.count - a.count || cmp(a.verb, b.verb) || cmp(a.resource, b.resource));

    const clients: ClientRow[] = [];
    for (let s = 0; s <= this.maxClients; s++) {
      const address = s === this.maxClients ? OTHER : this.clientNames[s];
      if (address === undefined) continue;
      if (this.connections[s] === 0 && this.clientRequests[s] === 0 && this.opened[s] === 0) continue;
      clients.push({ address, connections: this.connections[s], requests: this.clientRequests[s], opened: this.opened[s] });
    }
    clients.sort((a, b) => b.requests - a.requests || b.connections - a.connections || cmp(a.address, b.address));

    return {
      hottest,
      namespaces: namespaces.slice(0, top),
      requests: requests.slice(0, top),
      clients: clients.slice(0, top),
      hotAccesses: this.hot.total,
      hotErrorBound: this.hot.errorBound,
      sinceResetSeconds: Math.max(0, (this.clock() - this.resetMs) / 1000),
    };
  }

  /** The hottest sketch (tests and diagnostics). */
  get hotSketch(): SpaceSaving {
    return this.hot;
  }

  private txnOp(op: TxnOpLike, first: Buffer | undefined, firstKey: string): void {
    const write = op.range === undefined;
    const buf = op.range ? op.range.key : op.put ? op.put.key : op.deleteRange ? op.deleteRange.key : undefined;
    if (buf === undefined) return;
    // kube's txns name one key throughout: reuse its string rather than decode it again.
    const key = first !== undefined && (buf === first || buf.equals(first)) ? firstKey : buf.toString('latin1');
    this.hot.offer(key, write);
  }

  /** Counts a request of verb on the resource the layout parsed from key. */
  private count(verb: number, key: string): void {
    const layout = this.layout;
    let col: number;
    if (!layout.kube) col = this.reqCols - 1;
    else {
      const slot = this.resources.intern(key, layout.resStart, layout.resEnd);
      col = slot < 0 ? this.reqCols - 2 : slot;
    }
    this.reqCounts[verb * this.reqCols + col]++;
  }

  private namespaceSlot(key: string): number {
    const layout = this.layout;
    if (!layout.parse(key)) return 1;
    if (layout.nsStart < 0) return 0;
    const slot = this.namespaces.intern(key, layout.nsStart, layout.nsEnd);
    if (slot >= this.nsKeys.length) {
      const keys = new Float64Array(this.nsKeys.length * 2);
      keys.set(this.nsKeys);
      this.nsKeys = keys;
      const bytes = new Float64Array(this.nsBytes.length * 2);
      bytes.set(this.nsBytes);
      this.nsBytes = bytes;
    }
    return slot;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A bounded selection of the n largest items under `before` (before(a, b): a ranks ahead of b). */
class TopN<T> {
  private readonly heap: T[] = [];
  constructor(private readonly n: number, private readonly before: (a: T, b: T) => boolean) {}

  /** Whether an item ranked like `probe` would be kept (saves building items that would not). */
  wouldKeep(probe: T): boolean {
    return this.n > 0 && (this.heap.length < this.n || this.before(probe, this.heap[0]));
  }

  add(item: T): void {
    const h = this.heap;
    if (this.n <= 0) return;
    if (h.length < this.n) {
      h.push(item);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.before(h[p], h[i])) break; // the root holds the item ranked last
        [h[p], h[i]] = [h[i], h[p]];
        i = p;
      }
      return;
    }
    if (!this.before(item, h[0])) return;
    h[0] = item;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let last = i;
      if (l < h.length && this.before(h[last], h[l])) last = l;
      if (r < h.length && this.before(h[last], h[r])) last = r;
      if (last === i) break;
      [h[last], h[i]] = [h[i], h[last]];
      i = last;
    }
  }

  /** The items, first-ranked first. */
  sorted(): T[] {
    return [...this.heap].sort((a, b) => (this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0));
  }
}

interface OpenGroup {
  prefix: string;
  keys: number;
  bytes: number;
  minIdle: number;
  maxIdle: number;
  liveKeys: number;
}

const longestBefore = (a: LongestRow, b: LongestRow): boolean => a.bytes > b.bytes || (a.bytes === b.bytes && a.key < b.key);
const coldBefore = (a: ColdRow, b: ColdRow): boolean =>
  a.bytes > b.bytes || (a.bytes === b.bytes && (a.keys > b.keys || (a.keys === b.keys && a.prefix < b.prefix)));

/** A report under way: see OpsTracker.startReport. */
export class ReportJob {
  private after: string | undefined;
  private done: boolean;
  private scanned = 0;
  private readonly longest: TopN<LongestRow>;
  private readonly cold: TopN<ColdRow>;
  private readonly stack: OpenGroup[] = [];
  private readonly nowEpoch: number;
  private readonly probe: LongestRow = { key: '', bytes: 0 };
  private readonly visit: (key: string, bytes: number, epoch: number) => void;

  constructor(private readonly tracker: OpsTracker, private readonly top: number, private readonly coldAfter: number, private readonly source: LiveKeySource | undefined) {
    this.done = source === undefined;
    this.longest = new TopN(top, longestBefore);
    this.cold = new TopN(top, coldBefore);
    this.nowEpoch = tracker.tick();
    this.visit = (key, bytes, epoch) => this.onKey(key, bytes, epoch);
  }

  /** Walks up to maxKeys more keys; true when the walk is over. */
  step(maxKeys: number): boolean {
    if (this.done) return true;
    const last = this.source!.scan(this.after, maxKeys, this.visit);
    if (last === undefined) {
      this.done = true;
      while (this.stack.length > 0) this.close(this.stack.pop()!);
    } else {
      this.after = last;
    }
    return this.done;
  }

  result(): OpsReport {
    while (!this.step(65536));
    const counts = this.tracker.countsReport(this.top);
    return {
      longest: this.longest.sorted(),
      hottest: counts.hottest,
      namespaces: counts.namespaces,
      requests: counts.requests,
      clients: counts.clients,
      cold: this.cold.sorted(),
      hotAccesses: counts.hotAccesses,
      hotErrorBound: counts.hotErrorBound,
      coldAfterSeconds: this.coldAfter,
      sinceResetSeconds: counts.sinceResetSeconds,
      scannedKeys: this.scanned,
    };
  }

  private onKey(key: string, bytes: number, epoch: number): void {
    if (this.after !== undefined && key <= this.after) throw new Error('ops: LiveKeySource.scan must visit keys in ascending order');
    this.after = key;
    this.scanned++;
    const probe = this.probe;
    probe.key = key;
    probe.bytes = bytes;
    if (this.longest.wouldKeep(probe)) this.longest.add({ key, bytes });

    const layout = this.tracker.layout;
    layout.parse(key);
    const g = layout.groupEnd;
    const stack = this.stack;
    // Close the groups this key is outside of: keys sharing a prefix are contiguous in key order.
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.prefix.length <= g && key.startsWith(top.prefix)) break;
      this.close(stack.pop()!);
    }
    let group = stack.length > 0 ? stack[stack.length - 1] : undefined;
    if (group === undefined || group.prefix.length !== g) {
      group = { prefix: g === 0 ? '' : flatCopy(key.substring(0, g)), keys: 0, bytes: 0, minIdle: Infinity, maxIdle: 0, liveKeys: 0 };
      stack.push(group);
    }
    group.liveKeys++;
    const idle = this.nowEpoch - (epoch > 0 ? epoch : 1);
    if (idle >= this.coldAfter) {
      group.keys++;
      group.bytes += bytes;
      if (idle < group.minIdle) group.minIdle = idle;
      if (idle > group.maxIdle) group.maxIdle = idle;
    }
  }

  private close(g: OpenGroup): void {
    if (g.keys === 0) return;
    this.cold.add({
      prefix: g.prefix === '' ? NO_PREFIX : g.prefix,
      keys: g.keys,
      bytes: g.bytes,
      idleSeconds: g.minIdle,
      maxIdleSeconds: g.maxIdle,
      liveKeys: g.liveKeys,
    });
  }
}
