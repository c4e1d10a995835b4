import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../storage';
import type { ServerConfig } from './config';
import { META_CONSISTENT_INDEX } from './bootstrap';
import type { Log } from '../log';

// Backend commits in batches, as etcd's backend: every --backend-batch-limit applied writes or
// --backend-batch-interval, whichever first, with the applied raft index (the consistent index) in the
// same engine transaction, so a restart replays the log after it. A full disk raises the NOSPACE alarm
// instead of ending the member: the applied writes wait in the backend's buffer (and the log) and the
// commit is retried, more slowly each time, until space is freed.

export interface CommitterHooks {
  /** The index of the last entry applied (written with each commit). */
  consistentIndex(): number;
  raiseNoSpace(): void;
  fail(err: Error): void;
  log: Log;
}

export class BackendCommitter {
  private timer: NodeJS.Timeout | undefined;
  private retryMs = 0;
  private closed = false;
  /** While set (a snapshot being installed), commits do not write the consistent index. */
  private suspended = false;

  constructor(private readonly backend: Backend, private readonly cfg: ServerConfig, private readonly hooks: CommitterHooks) {
    backend.beforeCommit = () => {
      if (!this.suspended) backend.put('meta', META_CONSISTENT_INDEX, u64(this.hooks.consistentIndex()));
    };
  }

  /** Entries were applied: commit if the batch is full, else make sure the interval timer runs. */
  applied(): void {
    if (this.backend.pendingWrites >= this.cfg.backendBatchLimit) void this.commit().catch(() => {});
    else this.timer ??= setTimeout(() => void this.commit().catch(() => {}), this.cfg.backendBatchIntervalMs);
  }

  /** Commits now; resolves once everything applied so far is durable in the backend. */
  commitNow(): Promise<void> {
    return this.commit();
  }

  suspend(): void {
    this.suspended = true;
  }

  resume(): void {
    this.suspended = false;
  }

  private commit(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.backend.commit();
    p.then(
      () => (this.retryMs = 0),
      (err: Error) => {
        if (isNoSpace(err)) return this.onNoSpace(err);
        void this.outOfSpace(err).then((full) => (full ? this.onNoSpace(err) : this.hooks.fail(err)));
      },
    );
    return p;
  }

  /**
   * Whether a failed commit is a full disk after all: on a full file system an engine can report EIO
   * (lmdb on tmpfs); then the file system itself says whether it is full.
   */
  private async outOfSpace(err: Error): Promise<boolean> {
    return isIoError(err) && diskNearlyFull(join(this.cfg.dataDir, 'member', 'snap'));
  }

  private onNoSpace(err: Error): void {
    this.hooks.raiseNoSpace();
    this.retryMs = Math.min(Math.max(2 * this.retryMs, 100), 2000);
    if (this.retryMs === 100 || this.retryMs === 2000) this.hooks.log('warn', 'backend commit failed; retrying', { error: err.message, 'retry-interval': `${this.retryMs}ms` });
    if (!this.closed) this.timer ??= setTimeout(() => void this.commit().catch(() => {}), this.retryMs);
  }

  /** Stops the timer; with flush, commits what is buffered (with its consistent index). */
  async close(flush: boolean): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (flush) await this.backend.commit().catch((err: Error) => this.hooks.log('warn', 'final backend commit failed; the WAL keeps those writes', { error: err.message }));
  }
}

/** EIO, as an engine reports it (lmdb: code 5, "Input/output error"). */
function isIoError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'EIO' || code === 5 || /Input\/output error|\bEIO\b/.test(err.message);
}

/** Whether the file system holding dir has less than 8 MiB or 1% free (where a write can fail for space). */
async function diskNearlyFull(dir: string): Promise<boolean> {
  try {
    const st = await statfs(dir);
    const free = st.bavail * st.bsize;
    return free < 8 * 1024 * 1024 || free < (st.blocks * st.bsize) / 100;
  } catch {
    return false;
  }
}

function isNoSpace(err: Error): boolean {
  return (err as { code?: string }).code === 'ENOSPC' || /no space left|ENOSPC|MDB_MAP_FULL/i.test(err.message);
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
