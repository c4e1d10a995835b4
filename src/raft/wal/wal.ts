import { promises as fs, constants as fsc } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EntryType, type Entry, type HardState } from '../entry';
import { readRecord, RecordKind, recordSize, validRecordAfter, writeRecord } from './record';
import { timed, walFsyncSeconds } from '../../metrics';

// The write-ahead log: entries are durable once append() resolves (one O_DSYNC write for
// everything passed in, so callers that batch get group commit). Segment files are named
// <seq>-<first index>.wal (hex), preallocated, and start with the hard state. At open, a torn or
// corrupt tail of the last segment is cut off with a log line; damage with valid records after it
// is corruption in the middle, and opening fails.

const execFileAsync = promisify(execFile);

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Every segment starts with a hard-state record. */
const SEGMENT_HEADER_BYTES = recordSize(8);

export interface WalOptions {
  dir: string;
  segmentBytes?: number;
  /** Skip fdatasync (etcd's --unsafe-no-fsync). */
  noSync?: boolean;
  log?: (msg: string) => void;
  /**
   * The next segment could not be reserved (the disk is full): appends go on in the current segment's
   * reserved space, but the log will need a new segment. Called again with undefined once it is reserved.
   */
  onSpaceProblem?: (err: Error | undefined) => void;
}

export class WalCorruptError extends Error {}

/** How often to try again to reserve the next segment after the disk was full. */
const RESERVE_RETRY_MS = 1000;

interface Segment {
  seq: number;
  firstIndex: number;
  path: string;
}

const segmentName = (seq: number, firstIndex: number) =>
  `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;

function parseSegmentName(name: string): { seq: number; firstIndex: number } | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  return m ? { seq: parseInt(m[1], 16), firstIndex: parseInt(m[2], 16) } : undefined;
}

export interface OpenedWal {
  wal: Wal;
  /** Entries after fromIndex, in order. */
  entries: Entry[];
  hardState: HardState;
  lastIndex: number;
}

export class Wal {
  private segments: Segment[];
  private fd: fs.FileHandle;
  private pos: number;
  private appending = false;
  private readonly segmentBytes: number;
  private readonly noSync: boolean;
  private readonly log: (msg: string) => void;
  /** The next segment, preallocated in the background so a cut does not wait for it. */
  private prepared: Promise<string> | undefined;
  private reserveError: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly onSpaceProblem: (err: Error | undefined) => void;
  lastIndex: number;
  hardState: HardState;

  private constructor(
    private readonly dir: string,
    opts: WalOptions,
    state: { segments: Segment[]; fd: fs.FileHandle; pos: number; lastIndex: number; hardState: HardState },
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.noSync = opts.noSync ?? false;
    this.log = opts.log ?? (() => {});
    this.onSpaceProblem = opts.onSpaceProblem ?? (() => {});
    this.segments = state.segments;
    this.fd = state.fd;
    this.pos = state.pos;
    this.lastIndex = state.lastIndex;
    this.hardState = state.hardState;
  }

  /** Opens (or creates) the WAL in dir and reads back the entries after fromIndex. */
  static async open(opts: WalOptions, fromIndex = 0): Promise<OpenedWal> {
    const dir = opts.dir;
    await fs.mkdir(dir, { recursive: true });
    const log = opts.log ?? (() => {});
    const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.tmp')).map((n) => fs.rm(join(dir, n), { force: true }));
    await Promise.all(names);
    const segments: Segment[] = (await fs.readdir(dir))
      .map((n) => ({ n, p: parseSegmentName(n) }))
      .filter((x) => x.p)
      .map((x) => ({ seq: x.p!.seq, firstIndex: x.p!.firstIndex, path: join(dir, x.n) }))
      .sort((a, b) => a.seq - b.seq);

    const entries: Entry[] = [];
    let hardState: HardState | undefined;
    let lastIndex = segments.length ? segments[0].firstIndex - 1 : fromIndex;
    let endPos = 0;

    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const isLast = i === segments.length - 1;
      const buf = await fs.readFile(seg.path);
      let pos = 0;
      for (;;) {
        const r = readRecord(buf, pos, buf.length);
        if (r.ok) {
          const rec = r.record;
          if (rec.kind === RecordKind.HARD_STATE) {
            hardState = { term: rec.term, commit: rec.index, vote: rec.data.length >= 8 ? rec.data.readBigUInt64LE(0) : 0n };
          } else {
            if (rec.index > lastIndex + 1) {
              throw new WalCorruptError(`wal: ${seg.path}: entry ${rec.index} follows ${lastIndex} (missing entries); refusing to start`);
            }
            // An index at or below the last one replaces the log's suffix, as raft truncates it.
            while (entries.length && entries[entries.length - 1].index >= rec.index) entries.pop();
            lastIndex = rec.index;
            if (rec.index > fromIndex) {
              entries.push({ index: rec.index, term: rec.term, type: rec.kind === RecordKind.EMPTY_ENTRY ? EntryType.EMPTY : EntryType.NORMAL, data: Buffer.from(rec.data) });
            }
          }
          pos = r.next;
          continue;
        }
        if (r.reason === 'end') break;
        // A damaged record: the tail of the last segment is repaired, anything else is refused.
        // Trailing zeros are preallocated space: nothing to look at there.
        const dirtyEnd = endOfNonZero(buf, pos);
        if (!isLast || validRecordAfter(buf, pos, dirtyEnd, lastIndex)) {
          throw new WalCorruptError(`wal: ${seg.path}: corrupt record (${r.reason}) at offset ${pos} with valid records after it; refusing to start (restore from a snapshot or remove the damaged member)`);
        }
        log(`wal: ${seg.path}: ${r.reason === 'truncated' ? 'torn' : 'corrupt'} tail at offset ${pos} (${buf.length - pos} bytes after it), cut off; the last entry kept is ${lastIndex}`);
        // Zero what follows, up to the last non-zero byte (the rest is preallocated zeros already).
        const fh = await fs.open(seg.path, 'r+');
        await zeroFill(fh, pos, dirtyEnd);
        await fh.close();
        break;
      }
      if (isLast) endPos = pos;
    }

    const hs: HardState = hardState ?? { term: 0, vote: 0n, commit: 0 };
    let fd: fs.FileHandle;
    if (segments.length === 0) {
      const seg = { seq: 0, firstIndex: lastIndex + 1, path: join(dir, segmentName(0, lastIndex + 1)) };
      await (await createSegment(seg.path, opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES)).close();
      fd = await openForAppend(seg.path, opts.noSync ?? false);
      await syncDir(dir);
      segments.push(seg);
      endPos = 0;
    } else {
      fd = await openForAppend(segments[segments.length - 1].path, opts.noSync ?? false);
    }
    const wal = new Wal(dir, opts, { segments, fd, pos: endPos, lastIndex, hardState: hs });
    if (endPos === 0) await wal.writeRecords([], hs);
    wal.prepareNext();
    return { wal, entries, hardState: hs, lastIndex };
  }

  /** Appends entries (and a new hard state, if given) and makes them durable. One call at a time. */
  async append(entries: readonly Entry[], hardState?: HardState): Promise<void> {
    if (this.appending) throw new Error('wal: concurrent append');
    this.appending = true;
    try {
      await this.writeRecords(entries, hardState);
    } finally {
      this.appending = false;
    }
  }

  private async writeRecords(entries: readonly Entry[], hardState?: HardState): Promise<void> {
    if (hardState) this.hardState = hardState;
    let i = 0;
    for (;;) {
      // Take the records that fit in the current segment; a fresh segment takes at least one, however big.
      let size = hardState ? recordSize(8) : 0;
      let j = i;
      while (j < entries.length) {
        const s = recordSize(entries[j].data.length);
        if (this.pos + size + s > this.segmentBytes && (j > i || this.pos > SEGMENT_HEADER_BYTES)) break;
        size += s;
        j++;
      }
      if (size > 0) {
        const buf = Buffer.allocUnsafe(size);
        let p = 0;
        if (hardState) p = writeRecord(buf, p, RecordKind.HARD_STATE, hardState.commit, hardState.term, u64le(hardState.vote));
        hardState = undefined;
        for (let k = i; k < j; k++) {
          const e = entries[k];
          p = writeRecord(buf, p, e.type === EntryType.EMPTY ? RecordKind.EMPTY_ENTRY : RecordKind.ENTRY, e.index, e.term, e.data);
          this.lastIndex = e.index;
        }
        // The segment is open with O_DSYNC: the write returns once the records are on disk, one trip to
        // the thread pool instead of a write and then an fdatasync.
        await (this.noSync ? this.fd.write(buf, 0, size, this.pos) : timed(walFsyncSeconds, this.fd.write(buf, 0, size, this.pos)));
        this.pos += size;
      }
      if (j >= entries.length) break;
      i = j;
      await this.cut(entries[i].index);
    }
  }

  /** Closes the current segment (durably) and starts a new one whose first entry is firstIndex. */
  private async cut(firstIndex: number): Promise<void> {
    if (!this.noSync) await this.fd.datasync();
    await this.fd.close();
    const last = this.segments[this.segments.length - 1];
    const seg = { seq: last.seq + 1, firstIndex, path: join(this.dir, segmentName(last.seq + 1, firstIndex)) };
    const prepared = this.prepared;
    this.prepared = undefined;
    const tmp = prepared ? await prepared.catch(() => undefined) : undefined;
    if (tmp) {
      await fs.rename(tmp, seg.path);
    } else {
      // Nothing reserved (the disk was full): try now; if this fails too, the append fails.
      await (await createSegment(seg.path, this.segmentBytes)).close();
    }
    this.fd = await openForAppend(seg.path, this.noSync);
    await syncDir(this.dir);
    this.segments.push(seg);
    this.pos = 0;
    // Every segment starts with the hard state, so releasing old ones never loses it.
    const hs = this.hardState;
    const buf = Buffer.allocUnsafe(SEGMENT_HEADER_BYTES);
    writeRecord(buf, 0, RecordKind.HARD_STATE, hs.commit, hs.term, u64le(hs.vote));
    await this.fd.write(buf, 0, buf.length, 0);
    this.pos = buf.length;
    this.prepareNext();
  }

  /**
   * Reserves the next segment in the background, so a cut never waits for the disk and a full disk
   * shows up before the log needs the space. On failure it tells onSpaceProblem and tries again.
   */
  private prepareNext(): void {
    if (this.closed) return;
    const tmp = join(this.dir, `${this.segments[this.segments.length - 1].seq + 1}.tmp`);
    const size = this.segmentBytes;
    const p = (async () => {
      await fs.rm(tmp, { force: true });
      const fh = await createSegment(tmp, size);
      await fh.close();
      return tmp;
    })();
    this.prepared = p;
    p.then(
      () => {
        if (this.reserveError) {
          this.reserveError = undefined;
          this.log(`wal: next segment reserved in ${this.dir}`);
          this.onSpaceProblem(undefined);
        }
      },
      (err: Error) => {
        void fs.rm(tmp, { force: true }).catch(() => {});
        if (!this.reserveError) {
          this.log(`wal: cannot reserve the next ${size}-byte segment in ${this.dir}: ${err.message}`);
          this.onSpaceProblem(err);
        }
        this.reserveError = err;
        if (this.prepared === p) {
          this.prepared = undefined;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (!this.prepared) this.prepareNext();
          }, RESERVE_RETRY_MS);
          this.retryTimer.unref();
        }
      },
    );
  }

  /**
   * Deletes the segments whose entries are all at or below index (the backend has them durably).
   * The current segment is always kept.
   */
  async releaseTo(index: number): Promise<number> {
    let n = 0;
    while (this.segments.length > 1 && this.segments[1].firstIndex - 1 <= index) {
      const seg = this.segments.shift()!;
      await fs.rm(seg.path, { force: true });
      n++;
    }
    if (n > 0) await syncDir(this.dir);
    return n;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.prepared) await this.prepared.catch(() => undefined);
    if (!this.noSync) await this.fd.datasync();
    await this.fd.close();
  }
}

const ZEROS = Buffer.alloc(64 * 1024);

/** The end of the last non-zero byte at or after from (from if none): compares whole chunks natively. */
function endOfNonZero(buf: Buffer, from: number): number {
  let end = buf.length;
  while (end - from >= ZEROS.length && buf.compare(ZEROS, 0, ZEROS.length, end - ZEROS.length, end) === 0) end -= ZEROS.length;
  while (end > from && buf[end - 1] === 0) end--;
  return end;
}

/** Opens a segment for appending: with O_DSYNC (each write durable when it returns) unless fsync is off. */
function openForAppend(path: string, noSync: boolean): Promise<fs.FileHandle> {
  return fs.open(path, fsc.O_RDWR | (noSync ? 0 : fsc.O_DSYNC));
}

/**
 * Creates a segment file with its space reserved: fallocate(1) where the file system supports it (no
 * data written), zeros otherwise. Fails with ENOSPC when the disk cannot hold it.
 */
async function createSegment(path: string, size: number): Promise<fs.FileHandle> {
  const fh = await fs.open(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    if (!(await fallocate(path, size))) {
      await fh.truncate(size);
      await zeroFill(fh, 0, size);
    }
    return fh;
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(path, { force: true }).catch(() => {});
    throw err;
  }
}

/** true if fallocate reserved the space; false if it is not available here; throws on ENOSPC. */
async function fallocate(path: string, size: number): Promise<boolean> {
  try {
    await execFileAsync('fallocate', ['-l', String(size), path]);
    return true;
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message);
    if (/No space left/i.test(msg)) throw Object.assign(new Error(`ENOSPC: no space left on device, reserving ${path}`), { code: 'ENOSPC' });
    return false;
  }
}

async function zeroFill(fh: fs.FileHandle, from: number, to: number): Promise<void> {
  const chunk = Buffer.alloc(1 << 20);
  for (let p = from; p < to; p += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, to - p), p);
  await fh.datasync();
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function u64le(n: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, n));
  return b;
}
