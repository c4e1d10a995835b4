import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

// One process per data dir. etcd flocks its WAL files and bbolt flocks its database, so a second etcd on
// the same dir waits and fails; without a lock, two Plinth members on one dir both serve and interleave
// their writes until the dir no longer starts. Node has no flock, so the lock is a file created with
// O_EXCL holding the owner's PID and start time (Linux /proc), taken before anything is read or written.
// A lock left by a process that is gone (kill -9, a crash) is stale and taken over: a restart after a
// crash needs no clean-up. The start time tells a live owner from an unrelated process that got its PID.

export class DataDirInUseError extends Error {}

export interface DataDirLock {
  readonly file: string;
  release(): Promise<void>;
}

const LOCK_FILE = 'plinth.lock';

/**
 * The start time of process pid (clock ticks since boot); '' where /proc is not available; 'gone' for a
 * zombie (killed, not yet reaped by its parent: it holds nothing any more).
 */
async function startTimeOf(pid: number): Promise<string> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may contain spaces; then state (3) ... start time (22).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return 'gone';
    return fields[19] ?? '';
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the data dir's lock, or throws DataDirInUseError naming the process that holds it. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = join(dataDir, LOCK_FILE);
  const mine = `${process.pid} ${await startTimeOf(process.pid)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      try {
        await fh.writeFile(mine);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return {
        file,
        release: async () => {
          const now = await readFile(file, 'latin1').catch(() => '');
          if (now === mine) await rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = await readFile(file, 'latin1').catch(() => '');
    const [pidText, started = ''] = held.trim().split(' ');
    const pid = Number(pidText);
    const owned = Number.isSafeInteger(pid) && pid > 0 && alive(pid) && (started === '' || started === (await startTimeOf(pid)));
    if (owned) {
      throw new DataDirInUseError(`data dir ${dataDir} is in use by process ${pid} (another member on the same data dir?); refusing to start`);
    }
    // Stale (its process is gone) or unreadable (a crash while it was written): take it over.
    await rm(file, { force: true });
  }
  throw new DataDirInUseError(`data dir ${dataDir}: cannot take its lock ${file}`);
}
