import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawKv } from '../api/grpc-client';
import { startPlinth, type RunningServer } from '../helpers/servers';

// kill -9 under load: 8 writers (single puts and two-key txns) run until the server is killed at a
// random instant; after the restart every acknowledged write is there at its revision, every revision
// holds one whole write (a txn's two keys together), and revisions go on without a gap.
const ROUNDS = 3;
const b = (s: string) => Buffer.from(s);

interface Acked {
  rev: number;
  keys: string[];
  value: string;
}

async function load(kv: RawKv, writer: number, round: number, acked: Acked[], deadline: number): Promise<void> {
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    const value = `r${round}-w${writer}-${i}`;
    try {
      if (i % 3 === 2) {
        const keys = [`t/${writer}/a${i % 20}`, `t/${writer}/b${i % 20}`];
        const r = await kv.txn({ success: keys.map((k) => ({ request_put: { key: b(k), value: b(value) } })) });
        acked.push({ rev: Number(r.header.revision), keys, value });
      } else {
        const key = `p/${writer}/${i % 50}`;
        const r = await kv.put({ key: b(key), value: b(value) });
        acked.push({ rev: Number(r.header.revision), keys: [key], value });
      }
    } catch {
      return; // the server is gone
    }
  }
}

describe.each(['lmdb', 'leveldb', 'memory', 'bolt'] as const)('crash under load (%s)', (backend) => {
  const parent = mkdtempSync(join(tmpdir(), `plinth-crash-${backend}-`));
  const dataDir = join(parent, 'data');
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it(`keeps every acknowledged write through ${ROUNDS} kill -9 rounds`, async () => {
    const all: Acked[] = [];
    let server: RunningServer | undefined;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        // A slow backend batch interval keeps the backend behind the WAL: recovery must replay.
        server = await startPlinth({ backend, dataDir, extraArgs: ['--backend-batch-interval', '300ms'] });
        const kv = new RawKv(server.endpoint);
        const startRev = await kv.revision();
        const acked: Acked[] = [];
        const killAfter = 150 + Math.floor(Math.random() * 600);
        const deadline = Date.now() + killAfter + 2000;
        const writers = Array.from({ length: 8 }, (_, w) => load(kv, w, round, acked, deadline));
        await new Promise((r) => setTimeout(r, killAfter));
        await server.stop({ signal: 'SIGKILL', keepData: true });
        await Promise.all(writers);
        kv.close();
        expect(acked.length, `round ${round}: writes acknowledged before kill at ${killAfter} ms`).toBeGreaterThan(0);
        expect(Math.min(...acked.map((a) => a.rev))).toBeGreaterThan(startRev);
        all.push(...acked);
      }

      server = await startPlinth({ backend, dataDir });
      const kv = new RawKv(server.endpoint);
      const current = await kv.revision();
      // Every acknowledged write, at its revision (checked 64 requests at a time).
      const checks = all.flatMap((a) => a.keys.map((key) => async () => {
        const r = await kv.range({ key: b(key), revision: a.rev });
        expect(r.kvs.map((x) => [x.value.toString(), Number(x.mod_revision)]), `${key}@${a.rev}`).toEqual([[a.value, a.rev]]);
      }));
      // Every revision 2..current is one whole write: a put (one key) or a txn (its two keys).
      const byRev = new Map(all.map((a) => [a.rev, a]));
      for (let rev = 2; rev <= current; rev++) {
        const at = rev;
        checks.push(async () => {
          const r = await kv.range({ key: b('\0'), range_end: b('\0'), revision: at, min_mod_revision: at, max_mod_revision: at });
          const keys = r.kvs.map((x) => x.key.toString()).sort();
          expect(keys.length, `revision ${at} holds a whole write`).toBeGreaterThan(0);
          if (keys[0].startsWith('t/')) {
            expect(keys).toHaveLength(2);
            expect(keys[0].replace('/a', '/*')).toBe(keys[1].replace('/b', '/*'));
            expect(r.kvs[0].value.toString()).toBe(r.kvs[1].value.toString());
          } else {
            expect(keys).toHaveLength(1);
          }
          const a = byRev.get(at);
          if (a) expect(keys).toEqual([...a.keys].sort());
        });
      }
      for (let i = 0; i < checks.length; i += 64) await Promise.all(checks.slice(i, i + 64).map((f) => f()));
      // And the next write takes the next revision.
      const next = await kv.put({ key: b('after'), value: b('x') });
      expect(Number(next.header.revision)).toBe(current + 1);
      kv.close();
    } finally {
      await server?.stop({ keepData: true });
    }
  });
});
