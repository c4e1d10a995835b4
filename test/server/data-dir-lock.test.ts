import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirInUseError, lockDataDir } from '../../src/server/data-dir-lock';

// One process per data dir: an OS lock (flock) held for the life of the process. A second owner is
// refused with the holder's PID; the kernel frees the lock when its process ends, kill -9 included.

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-lock-'));
  dirs.push(d);
  return d;
};

/** A child process that takes the lock of dir through fs-ext directly and holds it until killed. */
async function holder(dir: string): Promise<ChildProcess> {
  const fsExt = resolve(__dirname, '../../node_modules/fs-ext');
  const script = `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(join(dir, 'plinth.lock'))},'a+');` +
    `require(${JSON.stringify(fsExt)}).flock(fd,'exnb',(e)=>{if(e)process.exit(3);fs.ftruncateSync(fd,0);fs.writeSync(fd,process.pid+'\\n',0);process.stdout.write('locked\\n');setInterval(()=>{},1e6)})`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.once('data', () => ok());
    child.once('exit', (code) => fail(new Error(`holder exited ${code}`)));
  });
  return child;
}

describe('data dir lock', () => {
  it('a second lock in the same process is refused, naming the process; release frees it', async () => {
    const dir = tmp();
    const lock = await lockDataDir(dir);
    expect(readFileSync(lock.file, 'latin1')).toBe(`${process.pid}\n`);
    await expect(lockDataDir(dir)).rejects.toThrow(DataDirInUseError);
    await expect(lockDataDir(dir)).rejects.toThrow(`in use by process ${process.pid}`);
    await lock.release();
    const again = await lockDataDir(dir);
    await again.release();
  });

  it('a dir locked by another live process is refused; once that process is killed (-9) the lock is free', async () => {
    const dir = tmp();
    const child = await holder(dir);
    await expect(lockDataDir(dir)).rejects.toThrow(`data dir ${dir} is in use by process ${child.pid}`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const lock = await lockDataDir(dir);
    expect(readFileSync(lock.file, 'latin1')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('a lock file left behind names nobody: a file without a lock on it is no obstacle', async () => {
    const dir = tmp();
    // A PID of a live process (ours) in a file nobody locks: the file's text decides nothing.
    writeFileSync(join(dir, 'plinth.lock'), `${process.pid}\n`);
    const lock = await lockDataDir(dir);
    await lock.release();
    writeFileSync(join(dir, 'plinth.lock'), 'garbled');
    const again = await lockDataDir(dir);
    await again.release();
  });
});
