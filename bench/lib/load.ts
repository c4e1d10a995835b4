// The load driver's engine: gRPC connections (one HTTP/2 connection per --conns, clients spread over them
// as etcd's tool does: client i on connection i mod conns), a token-bucket rate limiter like Go's
// x/time/rate, and a closed-loop unary runner with one outstanding request per client.
//
// Cheap per request: requests are Buffers passed through the (de)serializers, each client is one object
// whose bound callback is made once, latencies go into a preallocated Float64Array. The limit on count
// (--total) and on wall time (--max-time) bound every loop.

import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { Recorder } from './stats';

export const pass = (b: Buffer): Buffer => b;

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // each Client gets its own HTTP/2 connection (grpc-js shares subchannels between Clients by default)
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
  // no retry bookkeeping per call: a failed request is counted, as in the Go tool
  'grpc.enable_retries': 0,
};

/** Client TLS material: the CA that signed the servers' certificates (else the system's roots), and an optional client pair. */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** gRPC target for an endpoint given as host:port, http://host:port or https://host:port. */
export function target(endpoint: string): string {
  return endpoint.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

/**
 * Transport credentials for an endpoint, as etcd's clientv3 picks them: http:// is plaintext, https:// is
 * TLS (with `tls`'s CA, else the system's roots), and a bare host:port is TLS exactly when `tls` is given.
 */
export function credentialsFor(endpoint: string, tls?: ClientTls): grpc.ChannelCredentials {
  if (endpoint.startsWith('http://')) return grpc.credentials.createInsecure();
  // grpc-js sends an IP host as SNI, which Node warns about once per process (DEP0123); harmless: the
  // certificate is still checked against the IP (the SAN) and the CA
  if (tls) return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
  if (endpoint.startsWith('https://')) return grpc.credentials.createSsl();
  return grpc.credentials.createInsecure();
}

export async function connect(endpoints: readonly string[], n: number, dialTimeoutMs: number, offset = 0, tls?: ClientTls): Promise<grpc.Client[]> {
  if (endpoints.length === 0) throw new Error('no endpoints');
  const conns: grpc.Client[] = [];
  for (let i = 0; i < n; i++) {
    const ep = endpoints[(i + offset) % endpoints.length];
    conns.push(new grpc.Client(target(ep), credentialsFor(ep, tls), CHANNEL_OPTIONS));
  }
  const deadline = Date.now() + dialTimeoutMs;
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((res, rej) =>
          c.waitForReady(deadline, (err) => (err ? rej(new Error(`dial ${c.getChannel().getTarget()}: ${err.message}`)) : res())),
        ),
    ),
  );
  return conns;
}

export function closeAll(conns: readonly grpc.Client[]): void {
  for (const c of conns) c.close();
}

/** One unary call as a promise (set-up and paging, not the measured hot loop). */
export function unary(conn: grpc.Client, method: string, req: Buffer, timeoutMs = 60_000): Promise<Buffer> {
  return new Promise((res, rej) => {
    conn.makeUnaryRequest(method, pass, pass, req, { deadline: Date.now() + timeoutMs }, (err, resp) => (err ? rej(err) : res(resp as Buffer)));
  });
}

/**
 * Go's rate.Limiter (token bucket; a reservation may take the bucket negative and waits for it): reserve()
 * returns how many ms the caller waits before its request. rate 0 = no limit.
 */
export class Limiter {
  private tokens: number;
  private last: number;
  constructor(readonly rate: number, readonly burst = 1, now = performance.now()) {
    this.tokens = burst;
    this.last = now;
  }
  reserve(now = performance.now()): number {
    if (!(this.rate > 0)) return 0;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= 1;
    return this.tokens < 0 ? (-this.tokens * 1000) / this.rate : 0;
  }
}

export interface UnaryLoad {
  method: string;
  total: number;
  /** Requests per second over all clients, 0 = unlimited (Go: burst 1). */
  rate: number;
  /** Request i (0 <= i < total). */
  request(i: number): Buffer;
  /** Where request i's latency goes; default: the run's one recorder. */
  recorderFor?(i: number): Recorder;
}

export interface UnaryResult {
  elapsedSec: number;
  recorder: Recorder;
  /** Requests not sent because --max-time ran out. */
  unsent: number;
}

const METHOD_OPTS: grpc.CallOptions = {};

class UnaryWorker {
  private t0 = 0;
  private i = 0;
  private rec: Recorder;
  private readonly done: (err: grpc.ServiceError | null) => void;
  private readonly go: () => void;
  constructor(private readonly run: UnaryRun, private readonly conn: grpc.Client) {
    this.rec = run.recorder;
    this.done = (err) => {
      const ms = performance.now() - this.t0;
      if (err) this.rec.error(err.details || err.message);
      else this.rec.record(ms);
      this.next();
    };
    this.go = () => this.send();
  }
  next(): void {
    const run = this.run;
    const i = run.take();
    if (i < 0) {
      run.workerDone();
      return;
    }
    this.i = i;
    const wait = run.limiter.reserve();
    if (wait > 0) setTimeout(this.go, wait);
    else this.send();
  }
  private send(): void {
    const run = this.run;
    const req = run.load.request(this.i);
    this.rec = run.load.recorderFor ? run.load.recorderFor(this.i) : run.recorder;
    this.t0 = performance.now();
    this.conn.makeUnaryRequest(run.load.method, pass, pass, req, METHOD_OPTS, this.done);
  }
}

class UnaryRun {
  readonly recorder: Recorder;
  readonly limiter: Limiter;
  private nextIndex = 0;
  private live = 0;
  private resolve!: () => void;
  readonly finished: Promise<void>;
  constructor(readonly load: UnaryLoad, private readonly deadline: number) {
    this.recorder = new Recorder(Math.min(load.total, 1 << 22));
    this.limiter = new Limiter(load.rate, 1);
    this.finished = new Promise((r) => (this.resolve = r));
  }
  take(): number {
    if (this.nextIndex >= this.load.total) return -1;
    if ((this.nextIndex & 63) === 0 && performance.now() > this.deadline) return -1;
    return this.nextIndex++;
  }
  get taken(): number {
    return this.nextIndex;
  }
  start(workers: UnaryWorker[]): void {
    this.live = workers.length;
    if (this.live === 0) this.resolve();
    for (const w of workers) w.next();
  }
  workerDone(): void {
    if (--this.live === 0) this.resolve();
  }
}

/** Runs `load` with `clients` closed-loop clients over `conns`, for at most maxMs of wall time. */
export async function runUnary(conns: readonly grpc.Client[], clients: number, load: UnaryLoad, maxMs: number): Promise<UnaryResult> {
  const start = performance.now();
  const run = new UnaryRun(load, start + maxMs);
  const workers: UnaryWorker[] = [];
  for (let c = 0; c < clients; c++) workers.push(new UnaryWorker(run, conns[c % conns.length]));
  run.start(workers);
  await run.finished;
  const elapsedSec = (performance.now() - start) / 1000;
  return { elapsedSec, recorder: run.recorder, unsent: load.total - run.taken };
}

/** Resolves after ms, unless the time is past the deadline (then at once). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
