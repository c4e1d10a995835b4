import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, type Entry } from "../../src/raft/entry";
import { recordSize } from '../../src/raft/wal/record';
import { Wal, WalCorruptError } from '../../src/raft/wal/wal';

const entry = (index: number, data = `entry-${index}`, term = 2): Entry => ({ index, term, type: EntryType.NORMAL, data: Buffer.from(data) });
const HS_BYTES = recordSize(8);

describe('wal', () => {
  const dirs: string[] = [];
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'plinth-wal-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();

  it('reads back what was appended, in order, from a given index, with the hard state', async () => {
    const dir = newDir();
    const { wal, entries, hardState } = await Wal.open({ dir });
    expect(entries).toEqual([]);
    expect(hardState).toEqual({ term: 0, vote: 0n, commit: 0 });
    await wal.append([entry(1), entry(2)], { term: 2, vote: 7n, commit: 0 });
    await wal.append([entry(3, 'x'.repeat(5000))]);
    await wal.close();
    const again = await Wal.open({ dir }, 1);
    expect(again.entries.map((e) => e.index)).toEqual([2, 3]);
    expect(again.entries[1].data.toString()).toBe('x'.repeat(5000));
    expect(again.hardState).toEqual({ term: 2, vote: 7n, commit: 0 });
    expect(again.lastIndex).toBe(3);
    await again.wal.append([entry(4)]);
    await again.wal.close();
    expect((await Wal.open({ dir })).entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
  });

  it('cuts segments when full, preallocates them, reads across them and releases old ones', async () => {
    const dir = newDir();
    const segmentBytes = 4096;
    const { wal } = await Wal.open({ dir, segmentBytes });
    await wal.append([], { term: 3, vote: 0n, commit: 0 });
    for (let i = 1; i <= 100; i += 10) await wal.append(Array.from({ length: 10 }, (_, k) => entry(i + k, 'v'.repeat(200))));
    expect(wal.segmentCount).toBeGreaterThan(5);
    for (const n of segments(dir)) expect(statSync(join(dir, n)).size).toBeGreaterThanOrEqual(segmentBytes);
    const released = await wal.releaseTo(50);
    expect(released).toBeGreaterThan(0);
    await wal.close();
    const names = segments(dir);
    const firsts = names.map((n) => parseInt(n.split('-')[1], 16));
    expect(firsts[0]).toBeLessThanOrEqual(51); // entries after 50 are all still there
    const again = await Wal.open({ dir, segmentBytes }, 50);
    expect(again.entries.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, k) => 51 + k));
    expect(again.hardState?.term).toBe(3); // each segment starts with the hard state
    await again.wal.close();
  });

  // Corruption: the last segment's tail is repaired, anything with valid records after it is refused.
  async function writeThree(dir: string): Promise<{ file: string; offsets: number[] }> {
    const { wal } = await Wal.open({ dir });
    await wal.append([entry(1, 'a'.repeat(100)), entry(2, 'b'.repeat(100)), entry(3, 'c'.repeat(100))]);
    await wal.close();
    const file = join(dir, segments(dir)[0]);
    const r = recordSize(100);
    return { file, offsets: [HS_BYTES, HS_BYTES + r, HS_BYTES + 2 * r, HS_BYTES + 3 * r] };
  }
  const flip = (file: string, at: number) => {
    const buf = readFileSync(file);
    buf[at] ^= 0x40;
    writeFileSync(file, buf);
  };

  it('cuts off a torn tail (a record half written) and says so', async () => {
    const dir = newDir();
    const { file, offsets } = await writeThree(dir);
    truncateSync(file, offsets[2] + 50); // entry 3 torn; file also loses its preallocated zeros
    const logs: string[] = [];
    const { wal, entries } = await Wal.open({ dir, log: (m) => logs.push(m) });
    expect(entries.map((e) => e.index)).toEqual([1, 2]);
    expect(logs.join()).toMatch(/torn tail at offset \d+.*cut off; the last entry kept is 2/);
    await wal.append([entry(3, 'new')]);
    await wal.close();
    const again = await Wal.open({ dir });
    expect(again.entries.map((e) => e.data.toString())).toEqual(['a'.repeat(100), 'b'.repeat(100), 'new']);
  });

  it('cuts off a corrupt last record (a flipped byte in the tail)', async () => {
    const dir = newDir();
    const { file, offsets } = await writeThree(dir);
    flip(file, offsets[2] + 60);
    const logs: string[] = [];
    const { entries } = await Wal.open({ dir, log: (m) => logs.push(m) });
    expect(entries.map((e) => e.index)).toEqual([1, 2]);
    expect(logs.join()).toMatch(/corrupt tail/);
  });

  it('refuses to start on a flipped byte in the middle', async () => {
    const dir = newDir();
    const { file, offsets } = await writeThree(dir);
    flip(file, offsets[1] + 60);
    await expect(Wal.open({ dir })).rejects.toThrow(WalCorruptError);
    await expect(Wal.open({ dir })).rejects.toThrow(/corrupt record \(crc\) at offset \d+ with valid records after it; refusing to start/);
  });

  it('refuses to start on a damaged length field in the middle', async () => {
    const dir = newDir();
    const { file, offsets } = await writeThree(dir);
    flip(file, offsets[0] + 1);
    await expect(Wal.open({ dir })).rejects.toThrow(WalCorruptError);
  });

  it('refuses to start when a segment other than the last is damaged', async () => {
    const dir = newDir();
    const { wal } = await Wal.open({ dir, segmentBytes: 1024 });
    for (let i = 1; i <= 20; i++) await wal.append([entry(i, 'z'.repeat(300))]);
    await wal.close();
    const first = join(dir, segments(dir)[0]);
    flip(first, HS_BYTES + 60);
    await expect(Wal.open({ dir, segmentBytes: 1024 })).rejects.toThrow(/refusing to start/);
  });
});

describe('wal: cluster records', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'plinth-wal-'));
    dirs.push(d);
    return d;
  };
  const conf = (index: number, term = 1): Entry => ({ index, term, type: EntryType.CONF_CHANGE, data: Buffer.from(`cc-${index}`) });

  it('keeps the metadata, conf-change entries and the latest snapshot point across segments and releases', async () => {
    const dir = newDir();
    const metadata = { memberId: 0x8e9e05c52164694dn, clusterId: 0xcdf818194e3a8c32n };
    const { wal, metadata: m0 } = await Wal.open({ dir, segmentBytes: 4096 }, 0, metadata);
    expect(m0).toEqual(metadata);
    await wal.append([conf(1), conf(2), entry(3, '', 1)], { term: 1, vote: 0n, commit: 2 });
    for (let i = 4; i <= 60; i++) await wal.append([entry(i, 'v'.repeat(200))]);
    const snap = { index: 40, term: 2, confState: { voters: [1n, 2n, 3n], learners: [4n] } };
    await wal.saveSnapshot(snap, false);
    for (let i = 61; i <= 80; i++) await wal.append([entry(i, 'w'.repeat(200))]);
    expect(await wal.releaseTo(40)).toBeGreaterThan(0);
    await wal.close();
    const again = await Wal.open({ dir, segmentBytes: 4096 });
    expect(again.metadata).toEqual(metadata);
    expect(again.snapshot).toEqual(snap);
    expect(again.entries[0].index).toBe(41);
    expect(again.entries.at(-1)!.index).toBe(80);
    expect(again.lastIndex).toBe(80);
    await again.wal.close();
    // Entry types survive: a fresh log with conf changes and an empty entry.
    const d2 = newDir();
    const w2 = (await Wal.open({ dir: d2 }, 0, metadata)).wal;
    await w2.append([conf(1), entry(2, '', 1), entry(3, 'x', 1)]);
    await w2.close();
    const r2 = await Wal.open({ dir: d2 });
    expect(r2.entries.map((e) => [e.type, e.data.toString()])).toEqual([[EntryType.CONF_CHANGE, 'cc-1'], [EntryType.NORMAL, ''], [EntryType.NORMAL, 'x']]);
    await r2.wal.close();
  });

  it('a snapshot from the leader replaces the log: the entries before it are gone at the next open', async () => {
    const dir = newDir();
    const { wal } = await Wal.open({ dir }, 0, { memberId: 1n, clusterId: 2n });
    await wal.append([entry(1, 'a', 1), entry(2, 'b', 1), entry(3, 'stale', 1), entry(4, 'stale', 1)]);
    // The leader's snapshot at 3 (term 2) does not match this log: it replaces it.
    await wal.saveSnapshot({ index: 3, term: 2, confState: { voters: [1n], learners: [] } }, true);
    await wal.close();
    const again = await Wal.open({ dir });
    expect(again.entries).toEqual([]);
    expect(again.lastIndex).toBe(3);
    expect(again.snapshot?.index).toBe(3);
    await again.wal.append([entry(4, 'new', 2)]);
    await again.wal.close();
    const third = await Wal.open({ dir });
    expect(third.entries.map((e) => e.data.toString())).toEqual(['new']);
    await third.wal.close();
  });
});
