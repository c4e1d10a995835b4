// Sends one snapshot file to a peer on a connection of its own (kind 2): SNAP_HEADER (file size and
// the MsgSnap), the file in SNAP_CHUNK frames read from disk only as fast as the socket drains, then
// SNAP_END (length and SHA-256); the receiver answers SNAP_RESULT once the file is durable on its side.
// The outcome goes to onSnapshotStatus (raft's ReportSnapshot), after the current turn.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import type { Message } from '../core/types';
import type { TransportContext } from './context';
import { ProtocolError } from './errors';
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from './framing';
import { ConnectionKind, dialPeer, encodeHello, hex } from './handshake';
import { Link } from './link';
import { encodeMessage } from './message-codec';
import type { Peer } from './peer';

/** Bytes of file per SNAP_CHUNK frame (and per disk read). */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
export const SNAP_END_BYTES = 8 + 32;

export function startSnapshotSend(ctx: TransportContext, peer: Peer, msg: Message, file: string): void {
  let link: Link | undefined;
  let aborted: string | undefined;
  let abortDial: (() => void) | undefined;
  const me = {
    abort(reason: string): void {
      aborted = reason;
      abortDial?.();
      link?.close(reason, 'info');
    },
  };
  peer.snapshotOut = me;
  const startedAt = Date.now();
  let sentBytes = 0;

  const run = async (): Promise<void> => {
    const handle = await fs.open(file, 'r');
    try {
      const { size } = await handle.stat();
      // Each of the peer's URLs once; the first that completes the handshake carries the snapshot.
      let lastErr: Error | undefined;
      const hello = encodeHello(ConnectionKind.SNAPSHOT, ctx.clusterId, ctx.selfId, peer.id);
      for (const url of peer.urls) {
        if (aborted !== undefined) throw new Error(aborted);
        try {
          const { socket, rest } = await dialPeer(ctx.sockets, url, hello, ctx.opts.dialTimeoutMs, (a) => (abortDial = a));
          const { maxFrameBytes, writeHighWaterBytes } = ctx.opts.limits;
          link = new Link(socket, rest, { peerId: peer.id, kind: ConnectionKind.SNAPSHOT, maxFrameBytes, writeHighWaterBytes, counters: peer.snapshotCounters, log: ctx.log });
          break;
        } catch (err) {
          lastErr = err as Error;
          peer.checkRemoved(err);
        }
      }
      abortDial = undefined;
      if (link === undefined) throw lastErr ?? new Error('the peer has no URLs');
      if (aborted !== undefined) {
        link.close(aborted, 'info');
        throw new Error(aborted);
      }
      const l = link;
      ctx.registerLink(l);
      const result = new Promise<void>((resolve, reject) => {
        l.onFrame = (type, payload) => {
          if (type !== FrameType.SNAP_RESULT || payload.length < 1) throw new ProtocolError(`unexpected frame type ${type} on a snapshot connection`);
          if (payload[0] === 0) resolve();
          else reject(new Error(`the peer refused it: ${payload.toString('utf8', 1)}`));
          l.end();
        };
        l.onClose = (reason) => reject(new Error(`connection closed: ${reason}`));
      });
      result.catch(() => {}); // awaited below; a refusal may come while the file is still streaming

      const m = encodeMessage(msg);
      const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8 + m.length);
      writeFrameHeader(header, 0, FrameType.SNAP_HEADER, 8 + m.length);
      header.writeBigUInt64BE(BigInt(size), FRAME_HEADER_BYTES);
      m.copy(header, FRAME_HEADER_BYTES + 8);
      l.write(header);

      const hash = createHash('sha256');
      while (sentBytes < size && !l.closed) {
        const n = Math.min(SNAPSHOT_CHUNK_BYTES, size - sentBytes);
        // Read straight into the frame (no copy); the socket owns the buffer until it is flushed.
        const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
        const { bytesRead } = await handle.read(frame, FRAME_HEADER_BYTES, n, sentBytes);
        if (bytesRead === 0) throw new Error(`the file shrank to ${sentBytes} bytes while being sent (was ${size})`);
        writeFrameHeader(frame, 0, FrameType.SNAP_CHUNK, bytesRead);
        const chunk = bytesRead === n ? frame : frame.subarray(0, FRAME_HEADER_BYTES + bytesRead);
        hash.update(chunk.subarray(FRAME_HEADER_BYTES));
        sentBytes += bytesRead;
        if (!l.write(chunk) && !l.closed) await drainedOrClosed(l);
      }
      if (!l.closed) {
        const end = Buffer.allocUnsafe(FRAME_HEADER_BYTES + SNAP_END_BYTES);
        writeFrameHeader(end, 0, FrameType.SNAP_END, SNAP_END_BYTES);
        end.writeBigUInt64BE(BigInt(sentBytes), FRAME_HEADER_BYTES);
        hash.digest().copy(end, FRAME_HEADER_BYTES + 8);
        l.write(end);
      }
      await result;
    } finally {
      await handle.close().catch(() => {});
    }
  };

  const finish = (ok: boolean, err?: Error): void => {
    if (peer.snapshotOut === me) peer.snapshotOut = undefined;
    link?.close(ok ? 'snapshot sent' : 'snapshot failed', 'debug');
    if (ok) {
      ctx.log('info', `sent snapshot to peer ${hex(peer.id)}`, { peer: hex(peer.id), index: msg.snapshot?.metadata.index, term: msg.snapshot?.metadata.term, bytes: sentBytes, ms: Date.now() - startedAt });
    } else if (!ctx.isClosed()) {
      ctx.log('warn', `failed to send snapshot to peer ${hex(peer.id)}: ${err?.message ?? 'unknown error'}`, { peer: hex(peer.id), file, index: msg.snapshot?.metadata.index, bytesSent: sentBytes });
    }
    ctx.defer(() => ctx.safeCall('onSnapshotStatus', () => ctx.callbacks.onSnapshotStatus(peer.id, ok)));
  };
  run().then(
    () => finish(true),
    (err: Error) => finish(false, err),
  );
}

function drainedOrClosed(link: Link): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      link.socket.off('drain', done);
      link.socket.off('close', done);
      resolve();
    };
    link.socket.on('drain', done);
    link.socket.on('close', done);
  });
}
