import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirInUseError, lockDataDir } from '../../src/server/data-dir-lock';

// One process per data dir: a second owner is refused, a lock left by a process that is gone is taken over.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-lock-'));
  dirs.push(d);
  return d;
};

describe('data dir lock', () => {
  it('a second lock on a dir held by a live process is refused, naming the process; release frees it', async () => {
    const dir = tmp();
    const lock = await lockDataDir(dir);
    await expect(lockDataDir(dir)).rejects.toThrow(DataDirInUseError);
    await expect(lockDataDir(dir)).rejects.toThrow(`in use by process ${process.pid}`);
    await lock.release();
    expect(existsSync(lock.file)).toBe(false);
    const again = await lockDataDir(dir);
    await again.release();
  });

  it('a lock left by a process that is gone (kill -9) is taken over', async () => {
    const dir = tmp();
    // A child that exits at once: its PID is free afterwards.
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    writeFileSync(join(dir, 'plinth.lock'), `${pid} 12345\n`);
    const lock = await lockDataDir(dir);
    expect(readFileSync(lock.file, 'latin1').startsWith(`${process.pid} `)).toBe(true);
    await lock.release();
  });

  it('a live PID with another start time is an unrelated process that got the PID: stale', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'plinth.lock'), `${process.pid} 1\n`);
    if (!existsSync(`/proc/${process.pid}/stat`)) return; // no start times here: the PID alone decides
    const lock = await lockDataDir(dir);
    await lock.release();
  });

  it('an empty or garbled lock file (a crash while it was written) is taken over', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'plinth.lock'), '');
    const lock = await lockDataDir(dir);
    await lock.release();
  });
});
