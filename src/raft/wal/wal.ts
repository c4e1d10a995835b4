import { promises as fs, constants as fsc } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EntryType, type ConfState, type Entry, type HardState, type SnapshotMetadata } from '../core/types';
import { readRecord, RecordKind, recordSize, validRecordAfter, writeRecord } from './record';
import { timed, walFsyncSeconds, walWriteBytes } from '../../metrics';

// The write-ahead log: entries are durable once append() resolves (one O_DSYNC write for
// everything passed in, so callers that batch get group commit). Segment files are named
// <seq>-<first index>.wal (hex), preallocated, and start with the log's metadata (member and cluster
// id), the latest snapshot point and the hard state, so releasing old segments never loses them. At
// open, a torn or corrupt tail of the last segment is cut off with a log line; damage with valid
// records after it is corruption in the middle, and opening fails.

const execFileAsync = promisify(execFile);

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Who wrote the log: fixed when the member is created. */
export interface WalMetadata {
  memberId: bigint;
  clusterId: bigint;
}

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
  /** Undefined for a log written before Plinth had clusters (a single member). */
  metadata: WalMetadata | undefined;
  /** The latest snapshot point; undefined if none was ever recorded. */
  snapshot: SnapshotMetadata | undefined;
  /** Entries after the snapshot point (and after fromIndex), in order. */
  entries: Entry[];
  hardState: HardState;
  lastIndex: number;
}

/** Whether dir holds a log (a member was created there). */
export async function walExists(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).some((n) => parseSegmentName(n) !== undefined);
  } catch {
    return false;
  }
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
  metadata: WalMetadata | undefined;
  snapshot: SnapshotMetadata | undefined;

  private constructor(
    private readonly dir: string,
    opts: WalOptions,
    state: {
      segments: Segment[]; fd: fs.FileHandle; pos: number; lastIndex: number; hardState: HardState;
      metadata: WalMetadata | undefined; snapshot: SnapshotMetadata | undefined;
    },
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
    this.metadata = state.metadata;
    this.snapshot = state.snapshot;
  }

  /**
   * Opens (or creates) the WAL in dir and reads back the entries after the latest snapshot point (and
   * after fromIndex). A new log records metadata in its first segment, if given.
   */
  static async open(opts: WalOptions, fromIndex = 0, newMetadata?: WalMetadata): Promise<OpenedWal> {
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

    let entries: Entry[] = [];
    let hardState: HardState | undefined;
    let metadata: WalMetadata | undefined;
    let snapshot: SnapshotMetadata | undefined;
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
          } else if (rec.kind === RecordKind.METADATA) {
            metadata = { memberId: rec.data.readBigUInt64LE(0), clusterId: rec.data.readBigUInt64LE(8) };
          } else if (rec.kind === RecordKind.SNAPSHOT) {
            const snap = decodeSnapshotRecord(rec.index, rec.term, rec.data);
            // Segment headers repeat the latest snapshot: only a newer one changes anything.
            if (!snapshot || snap.meta.index > snapshot.index || (snap.reset && snap.meta.index >= snapshot.index)) {
              snapshot = snap.meta;
              if (snap.reset || snap.meta.index > lastIndex) {
                // The leader's snapshot replaced the log (or is ahead of it): nothing before survives.
                entries = [];
                lastIndex = snap.meta.index;
              }
            }
          } else {
            if (rec.index > lastIndex + 1) {
              throw new WalCorruptError(`wal: ${seg.path}: entry ${rec.index} follows ${lastIndex} (missing entries); refusing to start`);
            }
            // An index at or below the last one replaces the log's suffix, as raft truncates it.
            while (entries.length && entries[entries.length - 1].index >= rec.index) entries.pop();
            lastIndex = rec.index;
            entries.push({ index: rec.index, term: rec.term, type: rec.kind === RecordKind.CONF_CHANGE_ENTRY ? EntryType.CONF_CHANGE : EntryType.NORMAL, data: Buffer.from(rec.data) });
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
    const after = Math.max(fromIndex, snapshot?.index ?? 0);
    if (entries.length && entries[0].index <= after) entries = entries.filter((e) => e.index > after);
    if (segments.length === 0) metadata = newMetadata;
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
    const wal = new Wal(dir, opts, { segments, fd, pos: endPos, lastIndex, hardState: hs, metadata, snapshot });
    if (endPos === 0) await wal.writeHeader();
    wal.prepareNext();
    return { wal, metadata, snapshot, entries, hardState: hs, lastIndex };
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
        if (this.pos + size + s > this.segmentBytes && (j > i || this.pos > this.headerBytes)) break;
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
          p = writeRecord(buf, p, entryKind(e), e.index, e.term, e.data);
          this.lastIndex = e.index;
        }
        // The segment is open with O_DSYNC: the write returns once the records are on disk, one trip to
        // the thread pool instead of a write and then an fdatasync.
        await (this.noSync ? this.fd.write(buf, 0, size, this.pos) : timed(walFsyncSeconds, this.fd.write(buf, 0, size, this.pos)));
        this.pos += size;
        walWriteBytes.v += size;
      }
      if (j >= entries.length) break;
      i = j;
      await this.cut(entries[i].index);
    }
  }

  /** Closes the current segment (durably) and starts a new one whose first entry is firstIndex. */
  private async cut(firstIndex: number): Promise<void> {
    if (!this.noSync) await timed(walFsyncSeconds, this.fd.datasync());
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
    await this.writeHeader();
    this.prepareNext();
  }

  /** Bytes of a segment's header records (metadata, snapshot point, hard state). */
  private headerBytes = 0;

  /**
   * Starts a segment with the metadata, the latest snapshot point and the hard state, so that
   * releasing older segments never loses them.
   */
  private async writeHeader(): Promise<void> {
    const hs = this.hardState;
    const recs: [number, number, number, Buffer][] = [];
    if (this.metadata) recs.push([RecordKind.METADATA, 0, 0, metadataBytes(this.metadata)]);
    if (this.snapshot) recs.push([RecordKind.SNAPSHOT, this.snapshot.index, this.snapshot.term, encodeSnapshotRecord(this.snapshot, false)]);
    recs.push([RecordKind.HARD_STATE, hs.commit, hs.term, u64le(hs.vote)]);
    const buf = Buffer.allocUnsafe(recs.reduce((n, r) => n + recordSize(r[3].length), 0));
    let p = 0;
    for (const [kind, index, term, data] of recs) p = writeRecord(buf, p, kind, index, term, data);
    await this.fd.write(buf, 0, buf.length, this.pos);
    this.pos += buf.length;
    this.headerBytes = buf.length;
  }

  /**
   * Records a snapshot point durably. reset: the snapshot came from the leader and replaced the whole
   * log (entries written before it are dropped at the next open).
   */
  async saveSnapshot(meta: SnapshotMetadata, reset: boolean): Promise<void> {
    if (this.appending) throw new Error('wal: concurrent append');
    this.appending = true;
    try {
      const data = encodeSnapshotRecord(meta, reset);
      const buf = Buffer.allocUnsafe(recordSize(data.length));
      writeRecord(buf, 0, RecordKind.SNAPSHOT, meta.index, meta.term, data);
      if (this.pos + buf.length > this.segmentBytes) await this.cut(this.lastIndex + 1);
      await this.fd.write(buf, 0, buf.length, this.pos);
      this.pos += buf.length;
      this.snapshot = meta;
      if (reset || meta.index > this.lastIndex) this.lastIndex = meta.index;
    } finally {
      this.appending = false;
    }
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

function entryKind(e: Entry): number {
  if (e.type === EntryType.CONF_CHANGE) return RecordKind.CONF_CHANGE_ENTRY;
  return e.data.length === 0 ? RecordKind.EMPTY_ENTRY : RecordKind.ENTRY;
}

function metadataBytes(m: WalMetadata): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeBigUInt64LE(BigInt.asUintN(64, m.memberId), 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, m.clusterId), 8);
  return b;
}

/** [u8 flags (1 = reset)][u32 voters][u64 × voters][u32 learners][u64 × learners] */
export function encodeSnapshotRecord(meta: SnapshotMetadata, reset: boolean): Buffer {
  const { voters, learners } = meta.confState;
  const b = Buffer.allocUnsafe(1 + 4 + 8 * voters.length + 4 + 8 * learners.length);
  let p = b.writeUInt8(reset ? 1 : 0, 0);
  p = b.writeUInt32LE(voters.length, p);
  for (const v of voters) p = b.writeBigUInt64LE(v, p);
  p = b.writeUInt32LE(learners.length, p);
  for (const l of learners) p = b.writeBigUInt64LE(l, p);
  return b;
}

function decodeSnapshotRecord(index: number, term: number, data: Buffer): { meta: SnapshotMetadata; reset: boolean } {
  let p = 1;
  const ids = (): bigint[] => {
    const n = data.readUInt32LE(p);
    p += 4;
    if (n > (data.length - p) / 8) throw new WalCorruptError(`wal: snapshot record at index ${index}: bad member count ${n}`);
    const out: bigint[] = [];
    for (let i = 0; i < n; i++, p += 8) out.push(data.readBigUInt64LE(p));
    return out;
  };
  const voters = ids();
  const learners = ids();
  const confState: ConfState = { voters, learners };
  return { meta: { index, term, confState }, reset: (data[0] & 1) === 1 };
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
