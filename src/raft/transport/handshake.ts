// The connection handshake. Fixed layout, so a test proxy (or tcpdump) can read it:
//   dialer → acceptor, exactly 30 bytes: "PLNT" | u8 version (1) | u8 kind (1 stream, 2 snapshot, 3 probe, 4 members)
//                                         | u64 BE cluster id | u64 BE from id | u64 BE to id
//   acceptor → dialer: u8 status (0 ok) | u16 BE reason length | UTF-8 reason; on refusal it closes.
// Nothing else is sent before the dialer has read an ok.

import type * as net from 'node:net';
import type { NodeId } from '../core/types';
import type { SocketFactory } from './sockets';

export const MAGIC = Buffer.from('PLNT', 'ascii');
export const PROTOCOL_VERSION = 1;
export const HELLO_BYTES = 30;
export const REPLY_HEADER_BYTES = 3;
const MAX_REASON_BYTES = 0xffff;

/**
 * PROBE: the member with the larger id, which never dials a stream, checks a silent peer with a hello
 * that is judged like any other (cluster, member, removed, known) and then closed: so a data dir from
 * another cluster is reported on both sides whichever of the two ids is smaller.
 *
 * MEMBERS: a member joining a running cluster (it knows neither the cluster id nor any member id,
 * so all three are 0 in its hello) asks for the cluster's members, as etcd's GET /members on the
 * peer port. Not judged: the answer (one MEMBERS frame) is public. See members-query.ts.
 */
export const ConnectionKind = { STREAM: 1, SNAPSHOT: 2, PROBE: 3, MEMBERS: 4 } as const;
export type ConnectionKind = (typeof ConnectionKind)[keyof typeof ConnectionKind];

/** The acceptor's answer. Codes are part of the protocol: never renumber. */
export const HandshakeStatus = {
  OK: 0,
  /** Bad magic, unsupported version or unknown connection kind. */
  BAD_PROTOCOL: 1,
  CLUSTER_MISMATCH: 2,
  /** The to-id is not the acceptor's member id. */
  WRONG_MEMBER: 3,
  /** The from-id is not a member the acceptor knows. */
  UNKNOWN_MEMBER: 4,
  /** The from-id was removed from the cluster. */
  MEMBER_REMOVED: 5,
  /** A stream connection from the member with the larger id (the smaller id dials). */
  WRONG_DIALER: 6,
  /** A snapshot from this member is already being received. */
  BUSY: 7,
  /** The acceptor is shutting down. */
  CLOSING: 8,
} as const;
export type HandshakeStatus = (typeof HandshakeStatus)[keyof typeof HandshakeStatus];

export interface Hello {
  version: number;
  kind: number;
  clusterId: bigint;
  from: NodeId;
  to: NodeId;
}

export function hex(id: bigint): string {
  return id.toString(16);
}

export function encodeHello(kind: ConnectionKind, clusterId: bigint, from: NodeId, to: NodeId): Buffer {
  const b = Buffer.allocUnsafe(HELLO_BYTES);
  MAGIC.copy(b, 0);
  b[4] = PROTOCOL_VERSION;
  b[5] = kind;
  b.writeBigUInt64BE(clusterId, 6);
  b.writeBigUInt64BE(from, 14);
  b.writeBigUInt64BE(to, 22);
  return b;
}

/** The bytes still needed before a hello can be judged: 0 once the magic is wrong or 30 are in. */
export function helloBytesNeeded(buf: Buffer): number {
  if (buf.length >= HELLO_BYTES) return 0;
  const n = Math.min(buf.length, MAGIC.length);
  if (!buf.subarray(0, n).equals(MAGIC.subarray(0, n))) return 0;
  return HELLO_BYTES - buf.length;
}

/** Parses the dialer's first bytes; a string is the refusal reason (bad magic / version / kind). */
export function parseHello(buf: Buffer): Hello | string {
  const n = Math.min(buf.length, MAGIC.length);
  if (n < MAGIC.length || !buf.subarray(0, n).equals(MAGIC)) return 'bad magic: not a Plinth peer connection';
  if (buf.length < HELLO_BYTES) return 'truncated handshake';
  const version = buf[4];
  if (version !== PROTOCOL_VERSION) return `unsupported peer protocol version ${version} (this member speaks ${PROTOCOL_VERSION})`;
  const kind = buf[5];
  if (kind !== ConnectionKind.STREAM && kind !== ConnectionKind.SNAPSHOT && kind !== ConnectionKind.PROBE && kind !== ConnectionKind.MEMBERS) return `unknown connection kind ${kind}`;
  return { version, kind, clusterId: buf.readBigUInt64BE(6), from: buf.readBigUInt64BE(14), to: buf.readBigUInt64BE(22) };
}

export function encodeReply(status: HandshakeStatus, reason = ''): Buffer {
  let r = Buffer.from(reason, 'utf8');
  if (r.length > MAX_REASON_BYTES) r = r.subarray(0, MAX_REASON_BYTES);
  const b = Buffer.allocUnsafe(REPLY_HEADER_BYTES + r.length);
  b[0] = status;
  b.writeUInt16BE(r.length, 1);
  r.copy(b, REPLY_HEADER_BYTES);
  return b;
}

/** Bytes still needed for a whole reply (0 = complete). */
function replyBytesNeeded(buf: Buffer): number {
  if (buf.length < REPLY_HEADER_BYTES) return REPLY_HEADER_BYTES - buf.length;
  return Math.max(0, REPLY_HEADER_BYTES + buf.readUInt16BE(1) - buf.length);
}

/**
 * Reads a socket's first message: collects data until bytesNeeded(collected) is 0, then pauses the
 * socket and resolves with the collected bytes split into head (the first `headBytes(collected)`)
 * and rest (bytes that already belong to the frames after it). Bounded by maxBytes. Rejects when the
 * socket errors or closes first (a timeout is the caller destroying the socket).
 */
export function readHead(
  socket: net.Socket,
  maxBytes: number,
  bytesNeeded: (b: Buffer) => number,
  headBytes: (b: Buffer) => number,
): Promise<{ head: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    const done = (err?: Error): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) {
        reject(err);
        return;
      }
      socket.pause();
      const n = Math.min(headBytes(got), got.length);
      resolve({ head: got.subarray(0, n), rest: got.subarray(n) });
    };
    const onData = (chunk: Buffer): void => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      if (bytesNeeded(got) === 0) done();
      else if (got.length > maxBytes) done(new Error(`handshake longer than ${maxBytes} bytes`));
    };
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new Error('connection closed during the handshake'));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.resume();
  });
}

export function readHello(socket: net.Socket): Promise<{ head: Buffer; rest: Buffer }> {
  return readHead(socket, HELLO_BYTES, helloBytesNeeded, () => HELLO_BYTES);
}

/** The acceptor said no: status and its reason. `where` (a URL), when given, is named in the message. */
export class HandshakeRefused extends Error {
  override readonly name = 'HandshakeRefused';
  constructor(
    readonly status: number,
    readonly reason: string,
    where?: string,
  ) {
    super(where === undefined ? `refused (status ${status}): ${reason}` : `${where} refused the connection (status ${status}): ${reason}`);
  }
}

/**
 * Dials url, sends the hello and reads the reply, all within timeoutMs. Resolves with the socket
 * (paused) and any bytes that came after the reply; rejects with HandshakeRefused or a connection
 * error (the socket is destroyed then). abort() destroys the attempt (removePeer, close).
 */
export function dialPeer(
  sockets: SocketFactory,
  url: URL,
  hello: Buffer,
  timeoutMs: number,
  track: (abort: () => void) => void,
): Promise<{ socket: net.Socket; rest: Buffer }> {
  const socket = sockets.connect(url);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy(new Error(`no handshake within ${timeoutMs} ms`));
  }, timeoutMs);
  track(() => socket.destroy(new Error('dial aborted')));
  // Any error before the handshake settles is reported through the promise below; this listener
  // keeps an error emitted without a listener from becoming an uncaught exception.
  socket.on('error', () => {});
  const connected = new Promise<void>((resolve, reject) => {
    const onConnect = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off(sockets.connectEvent(url), onConnect);
      reject(socket.errored ?? new Error('connection closed'));
    };
    socket.once(sockets.connectEvent(url), onConnect);
    socket.once('close', onClose);
  });
  return connected
    .then(() => {
      socket.write(hello);
      return readHead(socket, REPLY_HEADER_BYTES + MAX_REASON_BYTES, replyBytesNeeded, (b) => REPLY_HEADER_BYTES + b.readUInt16BE(1));
    })
    .then(({ head, rest }) => {
      clearTimeout(timer);
      const status = head[0];
      if (status !== HandshakeStatus.OK) {
        socket.destroy();
        throw new HandshakeRefused(status, head.subarray(REPLY_HEADER_BYTES).toString('utf8'));
      }
      return { socket, rest };
    })
    .catch((err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (timedOut && !(err instanceof HandshakeRefused)) throw new Error(`no handshake within ${timeoutMs} ms`);
      throw err;
    });
}
