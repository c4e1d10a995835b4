import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { flock } from 'fs-ext';

// One process per data dir. etcd flocks its WAL files and bbolt flocks its database, so a second etcd on
// the same dir fails; without a lock, two Plinth members on one dir both serve and interleave their writes
// until the dir no longer starts. The lock is an OS lock (flock(2), through fs-ext: Node has none of its
// own) on <dir>/plinth.lock, held on an open descriptor for the life of the process: the kernel drops it
// when the process ends however it ends (kill -9 included), so a restart after a crash needs no clean-up
// and no guess about whether a PID is still its owner. The file also holds the owner's PID, only so that
// the refusal can name it.

export class DataDirInUseError extends Error {}

export interface DataDirLock {
  readonly file: string;
  release(): Promise<void>;
}

const LOCK_FILE = 'plinth.lock';

function flockAsync(fd: number, how: 'exnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => flock(fd, how, (err) => (err ? reject(err) : resolve())));
}

/** Takes the lock of dir (created if missing), or throws DataDirInUseError naming the process that holds it. */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  // 'a+' neither truncates (the owner's PID stays readable until we hold the lock) nor fails if it exists.
  const fh: FileHandle = await open(file, 'a+', 0o600);
  try {
    await flockAsync(fh.fd, 'exnb');
  } catch (err) {
    await fh.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err;
    const owner = (await readFile(file, 'latin1').catch(() => '')).trim().split(/\s+/)[0];
    const by = /^\d+$/.test(owner) ? `process ${owner}` : 'another process';
    throw new DataDirInUseError(`data dir ${dir} is in use by ${by} (another member on the same data dir?); refusing to start`);
  }
  await fh.truncate(0);
  await fh.write(`${process.pid}\n`, 0);
  let released = false;
  return {
    file,
    release: async () => {
      if (released) return;
      released = true;
      // The file stays (as etcd's lock files do): removing it could race a process that just opened it.
      await fh.truncate(0).catch(() => {});
      await flockAsync(fh.fd, 'un').catch(() => {});
      await fh.close();
    },
  };
}
