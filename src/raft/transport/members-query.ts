// The MEMBERS query (connection kind 4): how a member started with `--initial-cluster-state existing`
// learns the running cluster's id and members before it has either (etcd's GetClusterFromRemotePeers
// over GET /members on the peer port). Usable without a PeerTransport (the joiner has none yet).
//   dialer → acceptor: the 30-byte hello with kind 4, cluster id 0, from 0, to 0 (not judged)
//   acceptor → dialer: the ok reply, then exactly one MEMBERS frame (its membersInfo() bytes), then
//   it ends the connection.

import type * as net from 'node:net';
import { FRAME_HEADER_BYTES, FrameType } from './framing';
import { ConnectionKind, dialPeer, encodeHello, HandshakeRefused } from './handshake';
import { parsePeerUrl, peerSockets, plainTcp, type PeerTls } from './sockets';

/** The most bytes a MEMBERS frame carries: an acceptor sends no more, queryMembers accepts no more by default. */
export const MAX_MEMBERS_BYTES = 1024 * 1024;

export interface QueryMembersOptions {
  /** Dial, handshake and the whole answer, in ms (> 0). */
  timeoutMs: number;
  /** Largest answer accepted (default MAX_MEMBERS_BYTES); a larger one is an error. */
  maxBytes?: number;
  /** Peer TLS, for an https:// url. */
  tls?: PeerTls;
}

/**
 * Asks the member at url (http://host:port, a peer URL) for its members list: resolves with the bytes
 * of its one MEMBERS frame (what its membersInfo() returned). Rejects with HandshakeRefused when the
 * member refuses the query (e.g. it serves none: status 1, bad protocol; or it is shutting down:
 * status 8), or with an Error for anything else (bad URL, cannot connect, no answer within timeoutMs,
 * an answer over maxBytes, any other frame, the connection closing early). Every message names the
 * URL. The socket is always destroyed before the promise settles.
 */
export async function queryMembers(url: string | URL, opts: QueryMembersOptions): Promise<Buffer> {
  const u = parsePeerUrl(url);
  const where = u.href;
  const { timeoutMs } = opts;
  const maxBytes = opts.maxBytes ?? MAX_MEMBERS_BYTES;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`members query to ${where}: timeoutMs must be > 0, got ${timeoutMs}`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`members query to ${where}: maxBytes must be an integer ≥ 0, got ${maxBytes}`);
  const fail = (why: string): Error => new Error(`cannot get the members from ${where}: ${why}`);

  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    let abort: (() => void) | undefined;
    let socket: net.Socket | undefined;
    const finish = (err: Error | undefined, payload?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      abort?.();
      socket?.destroy();
      if (err !== undefined) reject(err);
      else resolve(payload!);
    };
    // Created before dialPeer's own timer of the same length, so it fires first: one message for a
    // slow dial, handshake or answer.
    const timer = setTimeout(() => finish(fail(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const hello = encodeHello(ConnectionKind.MEMBERS, 0n, 0n, 0n);
    dialPeer(opts.tls ? peerSockets(opts.tls) : plainTcp, u, hello, timeoutMs, (a) => (abort = a)).then(
      ({ socket: s, rest }) => {
        if (settled) {
          s.destroy();
          return;
        }
        socket = s;
        // At most one frame header, maxBytes of payload and the rest of one read are held.
        const chunks: Buffer[] = [];
        let got = 0;
        let len = -1; // the payload length, once the frame header is in
        const onData = (chunk: Buffer): void => {
          if (settled || chunk.length === 0) return;
          chunks.push(chunk);
          got += chunk.length;
          if (len < 0) {
            if (got < FRAME_HEADER_BYTES) return;
            const head = Buffer.concat(chunks, got);
            chunks.splice(0, chunks.length, head);
            const type = head[4];
            if (type !== FrameType.MEMBERS) return finish(fail(`unexpected frame type ${type} (expected MEMBERS, ${FrameType.MEMBERS})`));
            len = head.readUInt32BE(0);
            if (len > maxBytes) return finish(fail(`the members list is ${len} bytes, more than the limit of ${maxBytes}`));
          }
          if (got < FRAME_HEADER_BYTES + len) return;
          const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, got);
          finish(undefined, Buffer.from(all.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len)));
        };
        s.on('data', onData);
        s.on('error', (err: Error) => finish(fail(err.message)));
        s.on('close', () => finish(fail(got === 0 ? 'the connection closed before the members list came' : `the connection closed after ${got} bytes of the members frame`)));
        onData(rest);
        if (!settled) s.resume();
      },
      (err: Error) => finish(err instanceof HandshakeRefused ? new HandshakeRefused(err.status, err.reason, where) : fail(err.message)),
    );
  });
}
