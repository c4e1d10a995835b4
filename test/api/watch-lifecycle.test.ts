import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpc } from '../../src/api/grpc-server';
import type { GrpcServer } from '../../src/api/h2/grpc-server';
import { defaultConfig } from '../../src/server/config';
import { EtcdServer } from '../../src/server/etcd-server';
import { freePort } from '../helpers/servers';
import { packageDefinition } from './grpc-client';

// Watchers live as long as their stream: cancels, a client's half-close and a client that vanishes
// mid-stream all free them. In-process, so the hub's watcher count can be read directly.
const b = (s: string) => Buffer.from(s);
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

describe('watch stream lifecycle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-watch-life-'));
  let s: EtcdServer;
  let grpcServer: GrpcServer;
  let endpoint: string;
  const Watch = (grpc.loadPackageDefinition(packageDefinition).etcdserverpb as any).Watch;

  beforeAll(async () => {
    const port = await freePort();
    const cfg = { ...defaultConfig(), dataDir: dir, backend: 'memory' as const, listenClientUrls: [new URL(`http://127.0.0.1:${port}`)] };
    s = await EtcdServer.open(cfg);
    grpcServer = (await startGrpc(s, cfg.listenClientUrls)).server;
    endpoint = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    grpcServer?.forceShutdown();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function openWith(n: number) {
    const client = new Watch(endpoint, grpc.credentials.createInsecure());
    const stream = client.Watch();
    const ids: number[] = [];
    stream.on('data', (r: any) => r.created && ids.push(Number(r.watch_id)));
    stream.on('error', () => {});
    for (let i = 0; i < n; i++) stream.write({ create_request: { key: b(`k${i}`), range_end: i % 2 ? b('\0') : undefined } });
    expect(await until(() => ids.length === n)).toBe(true);
    return { client, stream, ids };
  }

  it('frees the watchers of a client process killed mid-stream', async () => {
    const before = s.watchHub.watcherCount;
    // A separate process opens 50 watchers, then is killed: the OS closes its socket under the stream.
    const script = `
      const grpc = require('@grpc/grpc-js'); const pl = require('@grpc/proto-loader');
      const def = pl.loadSync('etcd/etcdserver/etcdserverpb/rpc.proto', { includeDirs: [${JSON.stringify(join(__dirname, '..', '..', 'proto'))}], keepCase: true });
      const W = grpc.loadPackageDefinition(def).etcdserverpb.Watch;
      const st = new W(${JSON.stringify(endpoint)}, grpc.credentials.createInsecure()).Watch();
      let n = 0; st.on('data', (r) => { if (r.created && ++n === 50) console.log('ready'); });
      for (let i = 0; i < 50; i++) st.write({ create_request: { key: Buffer.from('gone' + i) } });
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', script], { cwd: join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout!.on('data', (d) => String(d).includes('ready') && r()));
    expect(s.watchHub.watcherCount).toBe(before + 50);
    child.kill('SIGKILL');
    expect(await until(() => s.watchHub.watcherCount === before)).toBe(true);
  });

  it('frees one on cancel, keeps them over a half-close, frees them when the call is canceled', async () => {
    const before = s.watchHub.watcherCount;
    const { client, stream, ids } = await openWith(10);
    const canceled: number[] = [];
    stream.on('data', (r: any) => r.canceled && canceled.push(Number(r.watch_id)));
    stream.write({ cancel_request: { watch_id: ids[0] } });
    stream.write({ cancel_request: { watch_id: 9999 } }); // unknown: etcd answers nothing
    expect(await until(() => canceled.length === 1)).toBe(true);
    expect(canceled).toEqual([ids[0]]);
    expect(s.watchHub.watcherCount).toBe(before + 9);
    // A half-close ends nothing (etcd keeps sending events); canceling the call frees the rest.
    stream.end();
    await new Promise((r) => setTimeout(r, 200));
    expect(s.watchHub.watcherCount).toBe(before + 9);
    stream.cancel();
    expect(await until(() => s.watchHub.watcherCount === before)).toBe(true);
    client.close();
  });
});
