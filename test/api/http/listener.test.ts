// One port for gRPC and HTTP/1.1 (as etcd's cmux): each connection's first bytes decide, however they
// are split across packets; both kinds of clients at once; keep-alive; the gateway's unimplemented paths.
import { Etcd3 } from 'etcd3';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlinth, type RunningServer } from '../../helpers/servers';
import { b64, call } from './http-helpers';

/** Sends a raw HTTP/1.1 request in the given pieces (with pauses) and returns the raw answer. */
function rawRequest(port: number, pieces: string[], pauseMs = 50): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer; got: ${out}`));
    }, 5000);
    sock.on('data', (d) => {
      out += d;
      if (/\r\n\r\n/.test(out)) {
        const len = /content-length: (\d+)/i.exec(out);
        const body = out.slice(out.indexOf('\r\n\r\n') + 4);
        const chunkedDone = /transfer-encoding: chunked/i.test(out) && /(^|\r\n)0\r\n([^\r\n]+\r\n)*\r\n$/.test(body);
        if ((len && body.length >= Number(len[1])) || chunkedDone) {
          clearTimeout(timer);
          sock.destroy();
          resolve(out);
        }
      }
    });
    sock.on('error', reject);
    sock.on('connect', async () => {
      for (const p of pieces) {
        sock.write(p);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    });
  });
}

describe('gRPC and HTTP on one client port', () => {
  let server: RunningServer;
  let client: Etcd3;

  beforeAll(async () => {
    server = await startPlinth({ backend: 'memory' });
    client = new Etcd3({ hosts: server.url });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  it('serves a gRPC client and HTTP clients side by side', async () => {
    await client.put('both').value('grpc');
    const r = await call(server.url, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('both') }));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).kvs[0].value).toBe(b64('grpc'));
    await call(server.url, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('both'), value: b64('http') }));
    expect(await client.get('both').string()).toBe('http');
    // many at once, both kinds
    const ops = Array.from({ length: 20 }, (_, i) =>
      i % 2 ? client.put(`k${i}`).value('v') : call(server.url, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`k${i}`), value: b64('v') })));
    await Promise.all(ops);
    expect(await client.getAll().prefix('k').count()).toBe(20);
  });

  it('waits for enough bytes to tell an HTTP/1 request from the HTTP/2 preface', async () => {
    // "P" and "PR" are prefixes of both "POST" / "PRI * HTTP/2.0".
    const req = 'POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}';
    const out = await rawRequest(server.port, ['P', 'O', req.slice(2)]);
    expect(out).toMatch(/^HTTP\/1.1 400 /);
    expect(out).toContain('{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}');
    const get = await rawRequest(server.port, ['G', 'ET /version HTTP/1.1\r\nHost: x\r\n\r\n']);
    expect(get).toContain('{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}');
  });

  it('keeps HTTP/1.1 connections alive across requests', async () => {
    const req = 'GET /version HTTP/1.1\r\nHost: x\r\n\r\n';
    const out = await new Promise<string>((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port: server.port }, () => sock.write(req + req));
      let buf = '';
      const t = setTimeout(() => reject(new Error(buf)), 5000);
      sock.on('data', (d) => {
        buf += d;
        if (buf.split('"etcdcluster"').length === 3) {
          clearTimeout(t);
          sock.destroy();
          resolve(buf);
        }
      });
    });
    expect(out.match(/HTTP\/1.1 200 OK/g)).toHaveLength(2);
  });

  it('answers a path the gateway does not know with 404 Not Found, as etcd 3.4\'s gateway (text, not JSON)', async () => {
    for (const path of ['/v3/nothing', '/v3/auth/nothing']) {
      const r = await call(server.url, 'POST', path, '{}');
      expect(r.status).toBe(404);
      expect(r.text).toBe('Not Found\n');
    }
  });

  it('streams the snapshot as {"result": …} lines', async () => {
    const res = await fetch(server.url + '/v3/maintenance/snapshot', { method: 'POST', body: '{}' });
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.result).toBeDefined();
    expect(lines[lines.length - 1].result.remaining_bytes).toBeUndefined(); // 0 is left out
  });
});
