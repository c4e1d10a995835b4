import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../../src/raft/entry';
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
