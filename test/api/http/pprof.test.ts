import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PPROF_PREFIX, PprofHandler } from '../../../src/api/http/pprof';
import { startPlinth } from '../../helpers/servers';

// The /debug/pprof/ handler on a plain HTTP server: the CPU profile and the heap snapshot parse as the
// formats DevTools reads, one CPU profile at a time, Go-only profiles answered 404.

let server: http.Server;
let base: string;
const logged: string[] = [];

beforeAll(async () => {
  const pprof = new PprofHandler((_level, msg) => logged.push(msg));
  server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith(PPROF_PREFIX)) return pprof.handle(path, req, res);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function get(path: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(base + path);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

describe('/debug/pprof/', () => {
  it('lists what it serves', async () => {
    const r = await get('/debug/pprof/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('profile?seconds=N');
    expect(r.body).toContain('heap');
  });

  it('takes a CPU profile over the seconds asked for, one at a time', async () => {
    const t0 = Date.now();
    const first = get('/debug/pprof/profile?seconds=1');
    await new Promise((r) => setTimeout(r, 200));
    const second = await get('/debug/pprof/profile?seconds=1');
    expect(second.status).toBe(500);
    expect(second.body).toBe('Could not enable CPU profiling: cpu profiling already in use\n');
    const r = await first;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/json');
    const profile = JSON.parse(r.body) as { nodes: { callFrame: { functionName: string } }[]; startTime: number; endTime: number; samples: number[] };
    expect(profile.nodes.length).toBeGreaterThan(0);
    expect(profile.nodes[0].callFrame.functionName).toBe('(root)');
    expect(profile.endTime - profile.startTime).toBeGreaterThanOrEqual(900_000); // microseconds
    expect(logged).toContain('started CPU profile');
    // Free again once the first is done.
    expect((await get('/debug/pprof/profile?seconds=1')).status).toBe(200);
  });

  it('refuses a profile longer than its bound', async () => {
    const r = await get('/debug/pprof/profile?seconds=999999');
    expect(r.status).toBe(400);
  });

  it('streams a heap snapshot', async () => {
    const r = await get('/debug/pprof/heap');
    expect(r.status).toBe(200);
    const snap = JSON.parse(r.body) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; strings: string[] };
    expect(snap.snapshot.meta.node_fields).toContain('name');
    expect(snap.snapshot.node_count).toBeGreaterThan(1000);
    expect(snap.strings).toContain('PprofHandler');
  });

  it('answers 404 for Go-only and unknown profiles', async () => {
    const g = await get('/debug/pprof/goroutine');
    expect(g.status).toBe(404);
    expect(g.body).toContain('Node has no counterpart');
    expect((await get('/debug/pprof/nothing')).status).toBe(404);
  });
});

describe('--enable-pprof on a plinth process', () => {
  it('serves /debug/pprof/ on the client URL with the flag, 404 without (as etcd)', async () => {
    const on = await startPlinth({ backend: 'memory', extraArgs: ['--enable-pprof'] });
    const off = await startPlinth({ backend: 'memory' });
    try {
      const index = await fetch(`${on.url}/debug/pprof/`);
      expect(index.status).toBe(200);
      expect(await index.text()).toContain('profile?seconds=N');
      const profile = await fetch(`${on.url}/debug/pprof/profile?seconds=1`);
      expect(profile.status).toBe(200);
      expect((JSON.parse(await profile.text()) as { nodes: unknown[] }).nodes.length).toBeGreaterThan(0);
      expect((await fetch(`${off.url}/debug/pprof/`)).status).toBe(404);
    } finally {
      await on.stop();
      await off.stop();
    }
  });
});
