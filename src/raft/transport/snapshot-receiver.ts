// Receives one snapshot on an accepted snapshot connection: checks the MsgSnap and the declared size
// against maxSnapshotBytes, writes the chunks to a temp file in snapshotDir (reading from the socket
// only as fast as the disk takes them), then on SNAP_END checks length and SHA-256, fsyncs, renames,
// fsyncs the directory, hands the file to onSnapshot and answers SNAP_RESULT. Any failure deletes the
// temp file and answers (or just closes); the sender reports the failure to its raft.

import { createHash, randomBytes, type Hash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { MessageType, type Message } from '../core/types';
import type { TransportContext } from './context';
import { ProtocolError } from './errors';
import { encodeFrame, FrameType } from './framing';
import { hex } from './handshake';
import type { Link } from './link';
import { decodeMessage } from './message-codec';
import type { Peer } from './peer';
import { SNAP_END_BYTES } from './snapshot-sender';

/** Stop reading the socket while this many bytes wait for the disk; resume below the low mark. */
const DISK_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const DISK_LOW_WATER_BYTES = 1024 * 1024;
/** How long a refused sender gets to read our answer before the connection is cut. */
const LINGER_MS = 2000;

export const TEMP_PREFIX = '.recv-';
export const TEMP_SUFFIX = '.tmp';

/** Appends buffers to a new file in order, one write at a time; pendingBytes is what waits. */
class FileWriter {
  pendingBytes = 0;
  private handle: fs.FileHandle | undefined;
  private tail: Promise<void>;
  private closed = false;

  constructor(
    readonly file: string,
    private readonly onLow: () => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.tail = fs.open(file, 'wx').then((h) => {
      this.handle = h;
    });
    this.tail.catch((err: Error) => this.onError(err));
  }

  push(buf: Buffer): void {
    this.pendingBytes += buf.length;
    this.tail = this.tail.then(async () => {
      const h = this.handle;
      if (h === undefined) throw new Error('file closed');
      let off = 0;
      try {
        while (off < buf.length) off += (await h.write(buf, off, buf.length - off)).bytesWritten;
      } catch (err) {
        this.onError(err as Error);
        throw err;
      }
      this.pendingBytes -= buf.length;
      if (this.pendingBytes <= DISK_LOW_WATER_BYTES) this.onLow();
    });
    this.tail.catch(() => {});
  }

  /** Waits for every write, fsyncs, closes. */
  async finish(): Promise<void> {
    await this.tail;
    const h = this.handle;
    if (h === undefined) throw new Error('file closed');
    await h.sync();
    this.handle = undefined;
    this.closed = true;
    await h.close();
  }

  /** Closes (after the write under way) and deletes the file. */
  async discard(): Promise<void> {
    await this.tail.catch(() => {});
    if (!this.closed) {
      this.closed = true;
      await this.handle?.close().catch(() => {});
      this.handle = undefined;
    }
    await fs.rm(this.file, { force: true }).catch(() => {});
  }
}

type State = 'header' | 'data' | 'storing' | 'done' | 'failed';

export class SnapshotReceive {
  private state: State = 'header';
  private msg: Message | undefined;
  private declared = 0;
  private received = 0;
  private readonly hash: Hash = createHash('sha256');
  private writer: FileWriter | undefined;
  private cleanup: Promise<void> | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly ctx: TransportContext,
    private readonly peer: Peer,
    private readonly link: Link,
    private readonly snapshotDir: string,
  ) {
    peer.snapshotIn = this;
    link.onFrame = (type, payload) => this.onFrame(type, payload);
    link.onClose = (reason) => this.onClose(reason);
    ctx.registerLink(link);
  }

  /** Transport closing / peer removed: cut the connection and delete the partial file. */
  abort(reason: string): Promise<void> {
    this.link.close(reason, 'info');
    return this.cleanup ?? Promise.resolve();
  }

  private onFrame(type: number, payload: Buffer): void {
    switch (this.state) {
      case 'header':
        if (type !== FrameType.SNAP_HEADER) throw new ProtocolError(`expected SNAP_HEADER, got frame type ${type}`);
        this.onHeader(payload);
        return;
      case 'data':
        if (type === FrameType.SNAP_CHUNK) this.onChunk(payload);
        else if (type === FrameType.SNAP_END) this.onEnd(payload);
        else throw new ProtocolError(`unexpected frame type ${type} in a snapshot`);
        return;
      case 'failed':
        return; // the sender may still be streaming until it reads our refusal
      default:
        throw new ProtocolError(`frame type ${type} after the snapshot's end`);
    }
  }

  private onHeader(payload: Buffer): void {
    if (payload.length < 8) throw new ProtocolError('SNAP_HEADER too short');
    const size = payload.readBigUInt64BE(0);
    const msg = decodeMessage(payload.subarray(8));
    if (msg.type !== MessageType.MsgSnap || msg.snapshot === undefined) return this.fail(`the header carries message type ${msg.type}, not a MsgSnap with metadata`);
    if (msg.to !== this.ctx.selfId) return this.fail(`the snapshot is addressed to ${hex(msg.to)}, not this member (${hex(this.ctx.selfId)})`);
    const max = this.ctx.opts.limits.maxSnapshotBytes;
    if (size > BigInt(max)) return this.fail(`snapshot of ${size} bytes exceeds the limit of ${max} bytes`);
    this.msg = msg;
    this.declared = Number(size);
    this.state = 'data';
    const name = `${TEMP_PREFIX}${hex(this.peer.id)}-${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    this.writer = new FileWriter(
      path.join(this.snapshotDir, name),
      () => this.link.resumeReading(),
      (err) => this.fail(`cannot write the snapshot: ${err.message}`),
    );
  }

  private onChunk(payload: Buffer): void {
    this.received += payload.length;
    if (this.received > this.declared) return this.fail(`more data than the ${this.declared} bytes declared`);
    this.hash.update(payload);
    const w = this.writer!;
    // The payload is a view of the socket's read buffer, which nothing else uses: no copy.
    w.push(payload);
    if (w.pendingBytes > DISK_HIGH_WATER_BYTES) this.link.pauseReading();
  }

  private onEnd(payload: Buffer): void {
    if (payload.length !== SNAP_END_BYTES) throw new ProtocolError(`SNAP_END of ${payload.length} bytes`);
    const length = payload.readBigUInt64BE(0);
    if (length !== BigInt(this.received) || this.received !== this.declared) {
      return this.fail(`truncated: received ${this.received} bytes, declared ${this.declared}, sender counted ${length}`);
    }
    if (!this.hash.digest().equals(payload.subarray(8))) return this.fail('SHA-256 mismatch: the snapshot was corrupted in transit');
    this.state = 'storing';
    this.store().catch((err: Error) => this.fail(`cannot store the snapshot: ${err.message}`));
  }

  private async store(): Promise<void> {
    const w = this.writer!;
    const msg = this.msg!;
    await w.finish();
    const md = msg.snapshot!.metadata;
    const name = `received-${md.term.toString(16).padStart(16, '0')}-${md.index.toString(16).padStart(16, '0')}-${randomBytes(4).toString('hex')}.snap`;
    const final = path.join(this.snapshotDir, name);
    await fs.rename(w.file, final);
    const dir = await fs.open(this.snapshotDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    if (this.state !== 'storing' || this.ctx.isClosed()) {
      await fs.rm(final, { force: true });
      return;
    }
    this.state = 'done';
    if (this.peer.snapshotIn === this) this.peer.snapshotIn = undefined;
    this.ctx.log('info', `received snapshot from peer ${hex(this.peer.id)}`, { peer: hex(this.peer.id), index: md.index, term: md.term, bytes: this.received, ms: Date.now() - this.startedAt, file: final });
    this.ctx.safeCall('onSnapshot', () => this.ctx.callbacks.onSnapshot(msg, final));
    this.link.end(encodeFrame(FrameType.SNAP_RESULT, Buffer.from([0])));
  }

  private fail(reason: string): void {
    if (this.state === 'done' || this.state === 'failed') return;
    this.state = 'failed';
    this.ctx.log('warn', `refused snapshot from peer ${hex(this.peer.id)}: ${reason}`, { peer: hex(this.peer.id), received: this.received, declared: this.declared });
    this.discard();
    this.link.resumeReading();
    this.link.end(encodeFrame(FrameType.SNAP_RESULT, Buffer.concat([Buffer.from([1]), Buffer.from(reason, 'utf8')])));
    setTimeout(() => this.link.close('refused snapshot', 'debug'), LINGER_MS).unref();
  }

  private discard(): void {
    if (this.peer.snapshotIn === this) this.peer.snapshotIn = undefined;
    if (this.cleanup === undefined) this.cleanup = this.writer?.discard() ?? Promise.resolve();
  }

  private onClose(reason: string): void {
    if (this.state === 'done') return;
    if (this.state !== 'failed') {
      this.ctx.log('warn', `snapshot from peer ${hex(this.peer.id)} incomplete: ${reason}`, { peer: hex(this.peer.id), received: this.received, declared: this.declared });
      this.state = 'failed';
    }
    this.discard();
  }
}
