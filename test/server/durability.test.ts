import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { startPlinth } from '../helpers/servers';

// Acknowledged writes are durable: after a clean stop, and after kill -9 right after the acks.
describe.each(['lmdb', 'leveldb', 'bolt'] as const)('restart on %s', (backend) => {
  const parent = mkdtempSync(join(tmpdir(), `plinth-restart-${backend}-`));
  const dataDir = join(parent, 'data');
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('keeps every acknowledged write and its revision across SIGTERM and kill -9', async () => {
    let server = await startPlinth({ backend, dataDir });
    let client = new Etcd3({ hosts: server.url });
    const acked: { key: string; value: string; rev: number }[] = [];
    // 8 concurrent writers, bounded in count.
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          const r = await client.put(`w${w}/k${i % 10}`).value(`v${i}`).exec();
          acked.push({ key: `w${w}/k${i % 10}`, value: `v${i}`, rev: Number(r.header.revision) });
        }
      }),
    );
    const last = new Map<string, { value: string; rev: number }>();
    for (const a of acked.sort((x, y) => x.rev - y.rev)) last.set(a.key, a);
    expect(new Set(acked.map((a) => a.rev)).size).toBe(acked.length); // one revision each
    client.close();

    // kill -9 right after the last ack: nothing acknowledged may be lost.
    await server.stop({ signal: 'SIGKILL', keepData: true });
    server = await startPlinth({ backend, dataDir });
    client = new Etcd3({ hosts: server.url });
    const all = await client.getAll().prefix('w').exec();
    expect(Number(all.header.revision)).toBe(acked.length + 1);
    for (const kv of all.kvs) {
      const want = last.get(kv.key.toString())!;
      expect(kv.value.toString()).toBe(want.value);
      expect(Number(kv.mod_revision)).toBe(want.rev);
    }
    expect(all.kvs).toHaveLength(last.size);
    // Revisions continue without a gap, and history is readable.
    const r = await client.put('after').value('x').exec();
    expect(Number(r.header.revision)).toBe(acked.length + 2);
    client.close();
    await server.stop({ keepData: true });

    server = await startPlinth({ backend, dataDir });
    client = new Etcd3({ hosts: server.url });
    expect(await client.get('after').string()).toBe('x');
    const old = await client.get(acked[0].key).revision(acked[0].rev).exec();
    expect(old.kvs[0].value.toString()).toBe(acked[0].value);
    client.close();
    await server.stop({ keepData: true });
  });
});
