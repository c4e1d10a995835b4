import type * as grpc from '@grpc/grpc-js';
import { encodeKeyValue } from '../mvcc/key-value';
import { GRPC_OVERHEAD_BYTES } from '../server/config';
import type { EtcdServer } from '../server/etcd-server';
import { EventType, eventKvBytes, type WatchBatch, type WatchEvent, type Watcher, type WatchSink } from '../watch/hub';
import { encodeEvent, encodeHeader, encodeWatchResponse, watchResponseSize, type WatchResponseFields } from '../wire/watch-codec';
import { INVALID, type Invalid } from './proto';
import { Errors, EtcdError, grpcErrorString } from '../errors';
import type { AuthContext } from '../server/etcd-server';
import { authContextOf } from './auth-context';

/** Responses a stream may hold unsent before its watchers are set aside as slow (etcd: chanBufLen). */
const MAX_QUEUED = 1024;
/**
 * Bytes a stream may hold unsent before its watchers are set aside as slow. A count alone does not
 * bound memory (1024 responses of 100 KB events are 100 MB per stream), so the queue is bounded in
 * bytes too. 2 MiB is a full fragment at the defaults (--max-request-bytes plus 512 KiB), and many
 * responses of ordinary size: a client that reads always has the next ones ready, while 20 streams
 * that never read hold 40 MiB (etcd 3.4 grows by about 100 MB under that load). Past it the hub holds
 * the events back (etcd's victims) and sends them from history once the client has read the queue:
 * nothing is lost or reordered. The check is made before a batch is taken, so a stream may exceed it
 * by one batch (at most one catch-up round: the hub's maxRevsPerResponse revisions, as etcd's
 * watchBatchMaxRevs).
 */
const MAX_QUEUED_BYTES = 2 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
/** clientv3.InvalidWatchID: the id of responses that belong to no watcher. */
const INVALID_WATCH_ID = -1n;
/**
 * Requests a stream may have waiting behind a create whose token is being verified (auth on): past it
 * the stream's requests are held back by flow control until they have been handled.
 */
const MAX_WAITING_REQUESTS = 1024;

/**
 * What a watch stream ends with when the server stops: etcd's gRPC server closes its transports under
 * the streams, which grpc-go clients (and etcd's gateway) report as UNAVAILABLE "transport is closing".
 */
const TRANSPORT_CLOSING = { code: 14, details: 'transport is closing' };

/**
 * etcdserverpb.Watch: one session per stream, many watchers per session, as etcd's serverWatchStream.
 * Responses are encoded here by hand (the service's serializer passes the bytes through).
 * onShutdown registers what runs when the server starts stopping (GrpcServer.onShutdown): the streams
 * then end as etcd's do, and a graceful stop does not wait for clients that would watch forever.
 */
export function watchService(s: EtcdServer, onShutdown?: (fn: () => void) => void): grpc.UntypedServiceImplementation {
  const headers = new HeaderCache(s);
  const sessions = new Set<WatchSession>();
  let stopping = false;
  onShutdown?.(() => {
    stopping = true;
    for (const session of [...sessions]) session.end(TRANSPORT_CLOSING);
  });
  return {
    Watch(call: grpc.ServerDuplexStream<any, Buffer>) {
      if (stopping) return void call.emit('error', TRANSPORT_CLOSING);
      const session = new WatchSession(s, call, headers, () => sessions.delete(session));
      sessions.add(session);
    },
  };
}

/** The header of the last revision sent, encoded once and shared by every watcher's response for it. */
class HeaderCache {
  private last: { rev: number; term: number; bytes: Buffer } | undefined;
  constructor(private readonly s: EtcdServer) {}
  get(rev: number): Buffer {
    const l = this.last;
    if (l && l.rev === rev && l.term === this.s.raftTerm) return l.bytes;
    this.last = { rev, term: this.s.raftTerm, bytes: encodeHeader(this.s.header(rev)) };
    return this.last.bytes;
  }
}

interface WatcherFlags {
  prevKv: boolean;
  fragment: boolean;
  progressNotify: boolean;
  /** No events sent since the last progress tick (etcd's progress map). */
  progressDue: boolean;
}

class WatchSession implements WatchSink {
  private readonly watchers = new Map<bigint, Watcher>();
  private readonly flags = new WeakMap<Watcher, WatcherFlags>();
  private nextId = 0n;
  private queue: Buffer[] = [];
  private head = 0;
  /** Bytes of the responses in queue not yet handed to the call. */
  private queuedBytes = 0;
  private blocked = false;
  private hasVictims = false;
  private lastProgress: { header: Buffer; bytes: Buffer } | undefined;
  /** The client's requests are held back by flow control while the answers pile up unread. */
  private requestsHeld = false;
  private closed = false;
  private readonly progressTimer: NodeJS.Timeout;
  /**
   * Requests handled in order after a create that waits for its token to be verified (auth on: a JWT
   * is checked asynchronously); undefined when none waits, as always while auth is off.
   */
  private waiting: Promise<void> | undefined;
  private waitingCount = 0;
  private heldForWaiting = false;

  constructor(
    private readonly s: EtcdServer,
    private readonly call: grpc.ServerDuplexStream<any, Buffer>,
    private readonly headers: HeaderCache,
    private readonly onClose: () => void,
  ) {
    call.on('data', (req) => this.onRequest(req));
    // The client closing its side ends nothing, as with etcd (events keep coming until the call is
    // canceled); a canceled call or a broken connection frees everything.
    call.on('error', () => this.close());
    call.on('cancelled', () => this.close());
    call.on('close', () => this.close());
    this.progressTimer = setInterval(() => this.progressTick(), s.cfg.watchProgressNotifyIntervalMs);
    this.progressTimer.unref();
  }

  private onRequest(req: any): void {
    if (this.closed) return;
    if (this.waiting) return this.after(() => this.handle(req));
    const pending = this.handle(req);
    if (pending) this.after(() => pending);
  }

  /** Runs next once every request before it has been handled. */
  private after(run: () => void | Promise<void>): void {
    this.waitingCount++;
    if (this.waitingCount > MAX_WAITING_REQUESTS && !this.heldForWaiting) {
      this.heldForWaiting = true;
      this.holdRequests(true);
    }
    this.waiting = (this.waiting ?? Promise.resolve())
      .then(() => (this.closed ? undefined : run()))
      .finally(() => {
        if (--this.waitingCount > 0) return;
        this.waiting = undefined;
        if (this.heldForWaiting) {
          this.heldForWaiting = false;
          if (!this.requestsHeld) this.holdRequests(false);
        }
      });
  }

  /** One request; a promise when it must finish before the next is handled. */
  private handle(req: any): void | Promise<void> {
    const invalid = req?.[INVALID] as Invalid | undefined;
    if (invalid) {
      this.close();
      this.call.emit('error', invalid);
      return;
    }
    switch (req.requestUnion) {
      case 'createRequest':
        return this.create(req.createRequest);
      case 'cancelRequest':
        return this.cancel(BigInt(req.cancelRequest.watchId ?? 0));
      case 'progressRequest':
        return this.push(this.progressAnswer());
    }
  }

  /**
   * A create, as etcd's recvLoop: while auth is on, the stream's token must allow reading the range
   * (etcd's isWatchPermitted, checked for every create), else the create is refused with the gRPC error's
   * words as the cancel reason.
   */
  private create(c: any): void | Promise<void> {
    const ctx = authContextOf(this.s, this.call);
    if (!ctx) return this.createPermitted(c, undefined);
    return ctx.then((auth) => this.createPermitted(c, auth), (err) => this.createPermitted(c, undefined, err));
  }

  private createPermitted(c: any, auth: AuthContext | undefined, tokenError?: unknown): void {
    const key = (c.key?.length ? c.key : Buffer.from([0])) as Buffer;
    const rangeEnd = (c.rangeEnd ?? Buffer.alloc(0)) as Buffer;
    const end = rangeEnd.length === 0 ? undefined : rangeEnd.length === 1 && rangeEnd[0] === 0 ? '' : rangeEnd.toString('latin1');
    const skey = key.toString('latin1');
    const rev = this.s.currentRevision();
    const refuse = (reason: string) =>
      this.enqueue({ header: this.s.header(rev), watchId: INVALID_WATCH_ID, created: true, canceled: true, cancelReason: reason });
    if (auth || tokenError) {
      const err = tokenError ?? this.s.watchPermission(auth, key, rangeEnd.length ? rangeEnd : undefined);
      if (err) return refuse(grpcErrorString(err instanceof EtcdError ? err : Errors.permissionDenied));
    }
    if (end !== undefined && end !== '' && skey >= end) return refuse('mvcc: watcher range is empty');
    let id = BigInt(c.watchId ?? 0);
    if (id === 0n) {
      // AutoWatchID: the next free id of this stream.
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      return refuse('mvcc: duplicate watch ID provided on the WatchStream');
    }
    const filters: number[] = c.filters ?? [];
    // The created response goes first: no event of this watcher can be queued before it.
    this.enqueue({ header: this.s.header(rev), watchId: id, created: true });
    const start = Number(c.startRevision ?? 0);
    const w = this.s.watch(id, skey, end, start, { noPut: filters.includes(0), noDelete: filters.includes(1) }, this);
    this.watchers.set(id, w);
    this.flags.set(w, { prevKv: !!c.prevKv, fragment: !!c.fragment, progressNotify: !!c.progressNotify, progressDue: true });
  }

  private cancel(id: bigint): void {
    const w = this.watchers.get(id);
    if (!w) return; // etcd answers nothing for an unknown watch id
    this.s.cancelWatch(w);
    this.watchers.delete(id);
    this.enqueue({ header: this.s.header(), watchId: id, canceled: true });
  }

  /** WatchSink: the hub's events for one of our watchers. */
  send(b: WatchBatch): boolean {
    if (this.closed) return true;
    if (this.queue.length - this.head >= MAX_QUEUED || this.queuedBytes >= MAX_QUEUED_BYTES) {
      this.hasVictims = true;
      return false;
    }
    const w = b.watcher;
    if (b.compactRevision) {
      this.watchers.delete(w.id);
      this.enqueue({ header: this.s.header(0), watchId: w.id, canceled: true, compactRevision: b.compactRevision });
      return true;
    }
    const flags = this.flags.get(w)!;
    const events = b.events.map((e) => this.eventBytes(e, flags.prevKv));
    if (events.length) flags.progressDue = false;
    const header = this.headers.get(b.revision);
    // etcd splits at its gRPC receive limit: --max-request-bytes plus the 512 KiB allowance.
    if (flags.fragment && events.length > 1 && watchResponseSize(header.length, w.id, events, false) >= this.fragmentLimit) {
      this.sendFragments(header, w.id, events);
    } else {
      this.push(encodeWatchResponse({ watchId: w.id, events }, header));
    }
    return true;
  }

  private eventBytes(e: WatchEvent, withPrev: boolean): Buffer {
    // etcd looks the previous value up when it sends (at mod_revision - 1), except for creations.
    if (withPrev && !(e.type === EventType.PUT && e.kv.version === 1)) {
      const prev = this.previous(e);
      if (prev) return encodeEvent(e.type, eventKvBytes(e), prev);
    }
    return (e.eventBytes ??= encodeEvent(e.type, eventKvBytes(e)));
  }

  private previous(e: WatchEvent): Buffer | undefined {
    const kv = this.s.previousKv(e.kv.key, e.kv.modRevision);
    return kv ? encodeKeyValue(kv) : undefined;
  }

  /** etcd's sendFragments: responses under --max-request-bytes, all but the last marked fragment. */
  private get fragmentLimit(): number {
    return this.s.cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  }

  private sendFragments(header: Buffer, watchId: bigint, events: Buffer[]): void {
    const max = this.fragmentLimit;
    let i = 0;
    while (i < events.length) {
      const part: Buffer[] = [];
      while (i < events.length) {
        part.push(events[i]);
        if (part.length > 1 && watchResponseSize(header.length, watchId, part, true) >= max) {
          part.pop();
          break;
        }
        i++;
      }
      const last = i >= events.length;
      this.push(encodeWatchResponse({ watchId, events: part, fragment: !last }, header));
    }
  }

  /**
   * The answer to a progress request, encoded once per header: a client that sends them faster than it
   * reads holds references to one buffer, not a buffer each.
   */
  private progressAnswer(): Buffer {
    const header = this.headers.get(this.s.currentRevision());
    if (this.lastProgress?.header !== header) this.lastProgress = { header, bytes: encodeWatchResponse({ watchId: INVALID_WATCH_ID }, header) };
    return this.lastProgress.bytes;
  }

  private enqueue(r: WatchResponseFields): void {
    this.push(encodeWatchResponse(r));
  }

  private push(buf: Buffer): void {
    if (this.closed) return;
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    this.flush();
    // Answers to its own requests (created, canceled, progress) are never dropped: a client that sends
    // them and does not read is held back by flow control instead, as etcd's recvLoop stops receiving
    // once its control channel is full. It can send one stream window more (1 MiB of requests).
    if (!this.requestsHeld && (this.queue.length - this.head >= MAX_QUEUED || this.queuedBytes >= MAX_QUEUED_BYTES)) {
      this.requestsHeld = true;
      this.holdRequests(true);
    }
  }

  private holdRequests(hold: boolean): void {
    (this.call as unknown as { holdRequests?: (hold: boolean) => void }).holdRequests?.(hold);
  }

  private flush(): void {
    while (!this.blocked && !this.closed && this.head < this.queue.length) {
      const buf = this.queue[this.head];
      this.queue[this.head++] = EMPTY; // the call holds it now: the queue must not keep it alive too
      this.queuedBytes -= buf.length;
      if (!this.call.write(buf)) {
        this.blocked = true;
        this.call.once('drain', () => {
          this.blocked = false;
          this.flush();
        });
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      if (this.requestsHeld) {
        this.requestsHeld = false;
        if (!this.heldForWaiting) this.holdRequests(false);
      }
      if (this.hasVictims && !this.blocked) {
        // Drained: the watchers set aside catch up from history now.
        this.hasVictims = false;
        this.s.resumeWatchers(this.watchers.values());
      }
    }
  }

  private progressTick(): void {
    for (const w of this.watchers.values()) {
      const f = this.flags.get(w)!;
      if (!f.progressNotify) continue;
      if (f.progressDue) this.s.requestWatchProgress(w);
      f.progressDue = true;
    }
  }

  /** Ends the stream with a status (the responses queued are dropped, as a closed transport drops them). */
  end(status: { code: number; details: string }): void {
    this.close();
    this.call.emit('error', status);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    clearInterval(this.progressTimer);
    for (const w of this.watchers.values()) this.s.cancelWatch(w);
    this.watchers.clear();
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }
}
