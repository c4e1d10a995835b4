import * as http from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';
import { packageDefinition, RawKv } from '../grpc-client';
import { ETCD_AVAILABLE, startEtcd, startPlinth, type RunningServer } from '../../helpers/servers';

// Issue #16, the gateway (JSON over HTTP/1.1 on the client port) and the stop:
//  - a request body is bounded in bytes, and one beyond the bound is answered as etcd's gateway relays
//    the gRPC server's refusal of a message too large;
//  - on SIGTERM, gRPC and gateway watch streams end as etcd's do (UNAVAILABLE "transport is closing"),
//    the process exits 0 soon, and every acknowledged put is there after a restart.

const b64 = (s: string) => Buffer.from(s).toString('base64');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const Watch = (grpc.loadPackageDefinition(packageDefinition).etcdserverpb as any).Watch as grpc.ServiceClientConstructor;
const protos = grpc.loadPackageDefinition(
  protoLoader.loadSync(['etcd/etcdserver/api/v3election/v3electionpb/v3election.proto', 'etcd/etcdserver/etcdserverpb/rpc.proto'], {
    includeDirs: [join(__dirname, '..', '..', '..', 'proto')],
    keepCase: true,
    longs: String,
    defaults: true,
  }),
) as any;

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: NodeJS.Dict<string>;
}

function post(server: RunningServer, path: string, body: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, trailers: res.trailers }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

interface GatewayWatch {
  req: http.ClientRequest;
  res: http.IncomingMessage | undefined;
  lines: string[];
  ended: boolean;
}

/** POST /v3/watch with a whole body: the answer is a stream of JSON lines. */
function gatewayWatch(server: RunningServer, create: object, onResponse?: (res: http.IncomingMessage) => void): GatewayWatch {
  const w: GatewayWatch = { req: undefined as unknown as http.ClientRequest, res: undefined, lines: [], ended: false };
  let buf = '';
  w.req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v3/watch', agent: false }, (res) => {
    w.res = res;
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        w.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    res.on('end', () => {
      if (buf) w.lines.push(buf);
      w.ended = true;
    });
    res.on('error', () => (w.ended = true));
    onResponse?.(res);
  });
  w.req.on('error', () => (w.ended = true));
  w.req.end(JSON.stringify({ create_request: create }));
  return w;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
}

const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

describe('gateway request bodies (issue #16)', () => {
  it('a body beyond the bound is refused as etcd refuses a message too large, and the gateway goes on', async () => {
    // 6 MB of JSON: beyond Plinth's bound at the defaults (2 × 2 MiB + 1 MiB); etcd reads it whole and
    // its gRPC server refuses the 4.5 MB message.
    const body = JSON.stringify({ key: b64('big'), value: Buffer.alloc(4_500_000, 0x61).toString('base64') });
    const answers: Record<string, RawAnswer> = {};
    const targets = ETCD_AVAILABLE ? ['plinth', 'etcd'] : ['plinth'];
    for (const t of targets) {
      const server = t === 'etcd' ? await startEtcd() : await startPlinth({ backend: 'memory' });
      servers.push(server);
      answers[t] = await post(server, '/v3/kv/put', body);
      // Still serving, on the gateway too.
      const after = await post(server, '/v3/kv/put', JSON.stringify({ key: b64('k'), value: b64('v') }));
      expect(after.status).toBe(200);
      await server.stop();
    }
    const shape = (a: RawAnswer) => ({
      status: a.status,
      contentType: a.headers['content-type'],
      trailer: a.headers.trailer,
      chunked: a.headers['transfer-encoding'],
      trailers: a.trailers,
      code: JSON.parse(a.body).code,
      message: String(JSON.parse(a.body).message).replace(/\(\d+ vs\. (\d+)\)$/, '(<size> vs. $1)'),
    });
    expect(shape(answers.plinth)).toEqual({
      status: 429,
      contentType: 'application/json',
      trailer: 'Grpc-Trailer-Content-Type',
      chunked: 'chunked',
      trailers: { 'grpc-trailer-content-type': 'application/grpc' },
      code: 8,
      message: 'grpc: received message larger than max (<size> vs. 2097152)',
    });
    if (answers.etcd) expect(shape(answers.plinth)).toEqual(shape(answers.etcd));
  }, 40_000);
});

describe('watch streams when the server stops (issue #16)', () => {
  interface StopResult {
    grpcStatus: { code: number; details: string } | undefined;
    /** A lease keep-alive stream and an election observer: streams no hook of their own ends. */
    keepAliveStatus: { code: number; details: string } | undefined;
    observeStatus: { code: number; details: string } | undefined;
    gatewayStatus: number | undefined;
    gatewayLast: string | undefined;
    gatewayEnded: boolean;
    exit: { code: number | null; signal: NodeJS.Signals | null; ms: number };
  }

  /** Puts keys, opens a gRPC watch and a gateway watch, sends SIGTERM and sees how everything ends. */
  async function stopDuringWatches(server: RunningServer, keys: number): Promise<StopResult> {
    const kv = new RawKv(server.endpoint);
    for (let i = 0; i < keys; i++) await kv.put({ key: Buffer.from(`acked/${i}`), value: Buffer.from(`v${i}`) });
    kv.close();
    const client = new Watch(server.endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const call = (client as any).Watch() as grpc.ClientDuplexStream<unknown, any>;
    let created = false;
    let grpcStatus: StopResult['grpcStatus'];
    call.on('data', (r: any) => (created ||= r.created));
    call.on('error', (e: grpc.ServiceError) => (grpcStatus = { code: e.code, details: e.details }));
    call.write({ create_request: { key: Buffer.from('w') } });
    const gw = gatewayWatch(server, { key: b64('w') });
    const lease = new protos.etcdserverpb.Lease(server.endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const election = new protos.v3electionpb.Election(server.endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const granted = await new Promise<any>((r, j) => lease.LeaseGrant({ TTL: 60 }, (e: Error, v: any) => (e ? j(e) : r(v))));
    await new Promise<void>((r, j) => election.Campaign({ name: Buffer.from('e'), lease: granted.ID, value: Buffer.from('me') }, (e: Error) => (e ? j(e) : r())));
    let keepAliveStatus: StopResult['keepAliveStatus'];
    let observeStatus: StopResult['observeStatus'];
    let keptAlive = false;
    let observed = false;
    const keepAlive = lease.LeaseKeepAlive();
    keepAlive.on('data', () => (keptAlive = true));
    keepAlive.on('error', (e: grpc.ServiceError) => (keepAliveStatus = { code: e.code, details: e.details }));
    keepAlive.write({ ID: granted.ID });
    const observe = election.Observe({ name: Buffer.from('e') });
    observe.on('data', () => (observed = true));
    observe.on('error', (e: grpc.ServiceError) => (observeStatus = { code: e.code, details: e.details }));
    await until(() => created && gw.lines.length >= 1 && keptAlive && observed, 10_000);
    expect(created).toBe(true);
    expect(keptAlive && observed).toBe(true);
    expect(gw.lines.length).toBe(1);
    const t0 = Date.now();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((r) =>
      server.proc.once('exit', (code, signal) => r({ code, signal, ms: Date.now() - t0 })),
    );
    process.kill(server.pid, 'SIGTERM');
    const exit = await Promise.race([exited, sleep(15_000).then(() => ({ code: null, signal: null, ms: Infinity }))]);
    await until(() => gw.ended && grpcStatus !== undefined && keepAliveStatus !== undefined && observeStatus !== undefined, 2000);
    client.close();
    lease.close();
    election.close();
    gw.req.destroy();
    return { grpcStatus, keepAliveStatus, observeStatus, gatewayStatus: gw.res?.statusCode, gatewayLast: gw.lines[gw.lines.length - 1], gatewayEnded: gw.ended, exit };
  }

  it('end with UNAVAILABLE "transport is closing" as etcd 3.4, exit 0 soon, and lose no acknowledged put', async () => {
    const KEYS = 20;
    const plinth = await startPlinth({ backend: 'lmdb' });
    servers.push(plinth);
    const p = await stopDuringWatches(plinth, KEYS);
    let etcdNote = '';
    let e: StopResult | undefined;
    if (ETCD_AVAILABLE) {
      const etcd = await startEtcd();
      servers.push(etcd);
      e = await stopDuringWatches(etcd, KEYS);
      await etcd.stop();
      etcdNote = `; etcd: exit ${e.exit.code ?? e.exit.signal} after ${e.exit.ms} ms, gRPC watch ${e.grpcStatus?.code} ${JSON.stringify(e.grpcStatus?.details)}`;
    }
    console.log(`SIGTERM: plinth exit ${p.exit.code ?? p.exit.signal} after ${p.exit.ms} ms, gRPC watch ${p.grpcStatus?.code} ${JSON.stringify(p.grpcStatus?.details)}${etcdNote}`);

    // etcd's gateway writes this chunk when its loopback connection closes under the stream.
    const closing = '{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}';
    expect(p.gatewayStatus).toBe(200);
    expect(p.gatewayEnded).toBe(true);
    expect(p.gatewayLast).toBe(closing);
    if (e) expect(e.gatewayLast).toBe(closing);
    // grpc-go clients report etcd's closed transport as UNAVAILABLE "transport is closing"; Plinth sends
    // that status (grpc-js words a dropped connection differently: the code is what etcd's clients see).
    expect(p.grpcStatus).toEqual({ code: grpc.status.UNAVAILABLE, details: 'transport is closing' });
    if (e) expect(e.grpcStatus?.code).toBe(grpc.status.UNAVAILABLE);
    // So do the streams without a stop hook of their own (they held the stop until the forced one).
    expect(p.keepAliveStatus).toEqual({ code: grpc.status.UNAVAILABLE, details: 'transport is closing' });
    expect(p.observeStatus).toEqual({ code: grpc.status.UNAVAILABLE, details: 'transport is closing' });
    if (e) expect([e.keepAliveStatus?.code, e.observeStatus?.code]).toEqual([grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
    // No stream holds the graceful stop up (it used to wait for the 5 s forced stop).
    expect(p.exit.code).toBe(0);
    expect(p.exit.ms).toBeLessThan(4500);

    // Every acknowledged put survives the stop.
    const again = await startPlinth({ backend: 'lmdb', dataDir: plinth.dataDir });
    servers.push(again);
    const kv = new RawKv(again.endpoint);
    try {
      const r = await kv.range({ key: Buffer.from('acked/'), range_end: Buffer.from('acked0') });
      expect(r.kvs.map((x) => `${x.key}=${x.value}`).sort()).toEqual(
        Array.from({ length: KEYS }, (_, i) => `acked/${i}=v${i}`).sort(),
      );
    } finally {
      kv.close();
      await again.stop({ keepData: false });
    }
  }, 60_000);
});

describe('gateway watches whose HTTP clients never read (issue #16)', () => {
  const WATCHES = 10;
  const PUTS = 300;
  const VALUE = Buffer.alloc(100 * 1024, 0x61);
  /**
   * RSS growth allowed. The gateway reads one message ahead of its HTTP client (grpc-js read 16 ahead:
   * 16 messages per watch) and a watcher catching up gets responses of at most 2 MiB of keys and values
   * (they were up to 1000 revisions: 100 MB of values, 135 MB of JSON, per watch that resumed): measured
   * +440..600 MB before; now about +220 MB before one client reads again and +290 MB in all (garbage
   * not yet collected included), against etcd 3.4's +135 MB and +227 MB under the same load (logged
   * below when it is installed).
   */
  const MAX_GROWTH_MB = 420;

  async function rssMb(pid: number): Promise<number> {
    const { readFile } = await import('node:fs/promises');
    const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  }

  /** 10 gateway watches that stop reading, 300 puts of 100 KB, then one reads again: RSS growth and its events. */
  async function slowGatewayWatches(server: RunningServer): Promise<{ growthMb: number; beforeResumeMb: number; revs: number[]; startRev: number }> {
    const kv = new RawKv(server.endpoint);
    const watches: GatewayWatch[] = [];
    try {
      for (let i = 0; i < WATCHES; i++) watches.push(gatewayWatch(server, { key: b64('big/'), range_end: b64('big0') }));
      await until(() => watches.every((w) => w.lines.length >= 1), 10_000);
      expect(watches.every((w) => w.lines.length >= 1)).toBe(true);
      for (const w of watches) w.res!.pause();
      const startRev = await kv.revision();
      const baseMb = await rssMb(server.pid);
      let peakMb = baseMb;
      let writing = true;
      const sampler = (async () => {
        while (writing) {
          peakMb = Math.max(peakMb, await rssMb(server.pid));
          await sleep(50);
        }
      })();
      for (let i = 0; i < PUTS; i++) await kv.put({ key: Buffer.from(`big/${i % 10}`), value: VALUE });
      await sleep(1000);
      // One client reads again: sampling goes on while the server sends it its backlog.
      const w = watches[0];
      const revs = () => {
        const out: number[] = [];
        for (const line of w.lines.slice(1)) for (const e of JSON.parse(line).result.events ?? []) out.push(Number(e.kv.mod_revision));
        return out;
      };
      const beforeResumeMb = peakMb - baseMb;
      w.res!.resume();
      await until(() => revs().length >= PUTS, 30_000);
      writing = false;
      await sampler;
      return { growthMb: peakMb - baseMb, beforeResumeMb, revs: revs(), startRev };
    } finally {
      for (const w of watches) w.req.destroy();
      kv.close();
    }
  }

  it('keep the server memory bounded and lose no event for the one that reads again', async () => {
    const plinth = await startPlinth({ backend: 'lmdb' });
    servers.push(plinth);
    const p = await slowGatewayWatches(plinth);
    await plinth.stop();
    let etcdNote = '';
    if (ETCD_AVAILABLE && process.env.PLINTH_SKIP_ETCD_COMPARE !== '1') {
      const etcd = await startEtcd();
      servers.push(etcd);
      const e = await slowGatewayWatches(etcd);
      await etcd.stop();
      etcdNote = `; etcd 3.4: +${e.beforeResumeMb.toFixed(0)} MB before, +${e.growthMb.toFixed(0)} MB in all`;
    }
    console.log(`gateway watches: plinth RSS +${p.beforeResumeMb.toFixed(0)} MB before one reads again, +${p.growthMb.toFixed(0)} MB in all${etcdNote}`);
    expect(p.growthMb).toBeLessThan(MAX_GROWTH_MB);
    expect(p.revs.length).toBe(PUTS);
    for (let i = 0; i < PUTS; i++) if (p.revs[i] !== p.startRev + 1 + i) expect.fail(`event ${i}: revision ${p.revs[i]}, expected ${p.startRev + 1 + i}`);
  }, 120_000);
});
