import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTargets, RawKv, startTarget } from '../grpc-client';
import type { RunningServer } from '../../helpers/servers';

// The HTTP/2 transport (src/api/h2) at its edges, against Plinth and real etcd alike: flow control on big
// answers and big requests, compressed requests, header blocks continued in CONTINUATION frames, and the
// connection-level frames (PING, protocol errors) spoken by hand on a raw socket.

const b = (s: string) => Buffer.from(s);
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

interface Frame { type: number; flags: number; id: number; payload: Buffer }

/** Sends bytes after the preface and an empty SETTINGS; collects the server's frames until it closes or ms pass. */
function talk(port: number, bytes: Buffer, ms = 1500): Promise<{ frames: Frame[]; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const frames: Frame[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ frames, closed });
    };
    const timer = setTimeout(done, ms);
    sock.on('connect', () => sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), bytes])));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        frames.push({ type: buf[3], flags: buf[4], id: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) });
        buf = buf.subarray(9 + len);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      done();
    });
  });
}

const goAwayCode = (frames: Frame[]) => {
  const g = frames.find((f) => f.type === 7);
  return g ? g.payload.readUInt32BE(4) : undefined;
};

describe.each(apiTargets().filter((t) => t === 'etcd' || t === 'plinth-lmdb'))('HTTP/2 transport: %s', (target) => {
  let server: RunningServer;
  let kv: RawKv;
  beforeAll(async () => {
    server = await startTarget(target);
    kv = new RawKv(server.endpoint);
  });
  afterAll(async () => {
    kv?.close();
    await server?.stop();
  });

  it('answers a 3 MB range across many flow-control windows, intact', async () => {
    const value = (i: number) => Buffer.alloc(10_000, String.fromCharCode(97 + (i % 26)));
    for (let i = 0; i < 300; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => kv.put({ key: b(`big/${String(i + j).padStart(3, '0')}`), value: value(i + j) })));
    }
    const r = await kv.range({ key: b('big/'), range_end: b('big0') });
    expect(r.kvs).toHaveLength(300);
    r.kvs.forEach((e, i) => {
      expect(e.key.toString()).toBe(`big/${String(i).padStart(3, '0')}`);
      expect(e.value.equals(value(i))).toBe(true);
    });
  });

  it('takes a 1.4 MB request sent in many DATA frames (beyond one stream window)', async () => {
    const value = Buffer.alloc(1_400_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7) & 0xff;
    await kv.put({ key: b('large'), value });
    const r = await kv.range({ key: b('large') });
    expect(r.kvs[0].value.equals(value)).toBe(true);
  });

  it('serves many concurrent streams on one connection', async () => {
    const n = 2000;
    await Promise.all(Array.from({ length: n }, (_, i) => kv.put({ key: b(`many/${i}`), value: b(`${i}`) })));
    const r = await kv.range({ key: b('many/'), range_end: b('many0'), count_only: true });
    expect(r.count).toBe(String(n));
  });

  it('reads header blocks continued in CONTINUATION frames (40 KB of metadata)', async () => {
    const md = new grpc.Metadata();
    md.set('x-large', 'v'.repeat(40_000));
    const client = new grpc.Client(server.endpoint, grpc.credentials.createInsecure());
    const out = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/etcdserverpb.KV/Range', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0x01, 0x78]), md, (err, res) => (err ? reject(err) : resolve(res!))),
    );
    client.close();
    expect(out.length).toBeGreaterThan(0); // a RangeResponse (its header at least)
  });

  it('answers PING with a PING ACK carrying the same bytes', async () => {
    const data = Buffer.from('0123abcd');
    const { frames } = await talk(server.port, frame(6, 0, 0, data), 700);
    const ack = frames.find((f) => f.type === 6 && f.flags & 1);
    expect(ack?.payload.equals(data)).toBe(true);
  });

  // grpc-go closes such connections without a word; Plinth says why first (GOAWAY with the error code).
  it('closes the connection for HEADERS on stream 0 (Plinth: GOAWAY PROTOCOL_ERROR)', async () => {
    const { frames, closed } = await talk(server.port, frame(1, 0x4 | 0x1, 0, Buffer.from([0x83])));
    expect(closed).toBe(true);
    if (target !== 'etcd') expect(goAwayCode(frames)).toBe(1);
  });

  it('closes the connection for a frame above 16 KB (Plinth: GOAWAY FRAME_SIZE_ERROR)', async () => {
    const { frames, closed } = await talk(server.port, frame(0, 0, 1, Buffer.alloc(20_000)));
    expect(closed).toBe(true);
    if (target !== 'etcd') expect(goAwayCode(frames)).toBe(6);
  });

  it('answers an unknown method with UNIMPLEMENTED and keeps the connection', async () => {
    const client = new grpc.Client(server.endpoint, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/etcdserverpb.KV/NoSuchMethod', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e!)),
    );
    client.close();
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect((await kv.range({ key: b('large'), count_only: true })).count).toBe('1');
  });
});

describe('HTTP/2 transport: compressed requests', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTarget('plinth-lmdb');
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('inflates gzip-compressed requests (grpc-encoding: gzip)', async () => {
    const client = new grpc.Client(server.endpoint, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    const put = Buffer.concat([Buffer.from([0x0a, 0x01, 0x7a, 0x12, 0x20]), Buffer.alloc(32, 0x61)]); // key "z", value 32 × "a"
    await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/etcdserverpb.KV/Put', (b: Buffer) => b, (b: Buffer) => b, put, (err, res) => (err ? reject(err) : resolve(res!))),
    );
    client.close();
    const kv = new RawKv(server.endpoint);
    const r = await kv.range({ key: b('z') });
    kv.close();
    expect(r.kvs[0].value.toString()).toBe('a'.repeat(32));
  });

  it('refuses a request that inflates past the message limit (a small gzip bomb) with RESOURCE_EXHAUSTED', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024)); // ~64 KB on the wire
    const body = Buffer.alloc(5 + bomb.length);
    body[0] = 1;
    body.writeUInt32BE(bomb.length, 1);
    bomb.copy(body, 5);
    const session = http2.connect(`http://${server.endpoint}`);
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers', 'grpc-encoding': 'gzip' });
      req.on('trailers', resolve);
      req.on('response', (h) => { if (h['grpc-status'] !== undefined) resolve(h); });
      req.on('error', reject);
      req.resume();
      req.end(body);
    });
    session.close();
    expect(trailers['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(String(trailers['grpc-message'])).toMatch(/after decompression larger than max/);
  });
});
