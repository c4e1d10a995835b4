import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordSize } from '../../src/raft/wal/record';
import { RawKv } from '../api/grpc-client';
import { startPlinth } from '../helpers/servers';

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');
const b = (s: string) => Buffer.from(s);

describe('WAL placement and damage, through the server', () => {
  const parent = mkdtempSync(join(tmpdir(), 'plinth-walsrv-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('keeps the WAL in --wal-dir and recovers from it', async () => {
    const dataDir = join(parent, 'data1');
    const walDir = join(parent, 'wal-elsewhere');
    const args = ['--wal-dir', walDir, '--backend-batch-interval', '1h'];
    let s = await startPlinth({ dataDir, extraArgs: args });
    let kv = new RawKv(s.endpoint);
    await kv.put({ key: b('a'), value: b('1') });
    kv.close();
    // The backend never committed (1h interval): after kill -9 only the WAL in --wal-dir has the write.
    await s.stop({ signal: 'SIGKILL', keepData: true });
    expect(readdirSync(walDir).some((n) => n.endsWith('.wal'))).toBe(true);
    expect(existsSync(join(dataDir, 'member', 'wal'))).toBe(false);
    s = await startPlinth({ dataDir, extraArgs: args });
    kv = new RawKv(s.endpoint);
    expect((await kv.range({ key: b('a') })).kvs[0]?.value.toString()).toBe('1');
    kv.close();
    await s.stop({ keepData: true });
  });

  async function writeAndKill(dataDir: string): Promise<string> {
    const s = await startPlinth({ dataDir, extraArgs: ['--backend-batch-interval', '1h'] });
    const kv = new RawKv(s.endpoint);
    for (let i = 0; i < 5; i++) await kv.put({ key: b(`k${i}`), value: b('x'.repeat(100)) });
    kv.close();
    await s.stop({ signal: 'SIGKILL', keepData: true });
    const walDir = join(dataDir, 'member', 'wal');
    return join(walDir, readdirSync(walDir).filter((n) => n.endsWith('.wal')).sort().at(-1)!);
  }

  it('cuts off a torn tail at start, with a log line, and serves what came before', async () => {
    const dataDir = join(parent, 'data2');
    const seg = await writeAndKill(dataDir);
    const buf = readFileSync(seg);
    let end = buf.length;
    while (end > 0 && buf[end - 1] === 0) end--;
    buf.fill(0, end - 40, end); // the last record loses its end, as a torn write would
    writeFileSync(seg, buf);
    const s = await startPlinth({ dataDir });
    expect(s.logs()).toMatch(/wal: .*: (torn|corrupt) tail at offset \d+/);
    const kv = new RawKv(s.endpoint);
    const r = await kv.range({ key: b('k'), range_end: b('l'), keys_only: true });
    expect(r.kvs.map((x) => x.key.toString())).toEqual(['k0', 'k1', 'k2', 'k3']);
    kv.close();
    await s.stop({ keepData: true });
  });

  it('refuses to start on damage in the middle of the log, saying why', async () => {
    const dataDir = join(parent, 'data3');
    const seg = await writeAndKill(dataDir);
    const buf = readFileSync(seg);
    // Past the header and the first entries: inside a record with valid records after it.
    buf[recordSize(8) + 3 * recordSize(60)] ^= 0xff;
    writeFileSync(seg, buf);
    const r = spawnSync(process.execPath, [BIN, '--data-dir', dataDir, '--listen-client-urls', 'http://127.0.0.1:0'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    // One "fatal" JSON line in etcd's words, the reason in its error field.
    const failed = r.stderr.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.msg === 'failed to start etcd');
    expect(failed).toHaveLength(1);
    expect(failed[0].level).toBe('fatal');
    expect(failed[0].error).toMatch(/^wal: .*corrupt record .* refusing to start/);
  });
});
