// The transport's options, their defaults and validation.

import type { BoundListener } from '../../net/bound-listener';
import type { Message, NodeId } from '../core/types';
import type { PeerTls } from './sockets';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface TransportLimits {
  /** Largest frame payload sent or accepted; a larger incoming frame closes the connection. */
  maxFrameBytes?: number;
  /** Per peer: bytes of messages/requests waiting for the socket; beyond it they are dropped. */
  queueBytes?: number;
  /** Per peer: messages waiting for the socket; beyond it they are dropped. */
  queueMessages?: number;
  /** Per peer: while the socket holds more unflushed bytes than this, output waits in the queue. */
  writeHighWaterBytes?: number;
  /** Per peer and direction: requests waiting for an answer; incoming: reading stops at this many. */
  maxInflightRequests?: number;
  /** Largest snapshot file a receiver accepts. */
  maxSnapshotBytes?: number;
}

export interface PeerTransportOptions {
  selfId: NodeId;
  clusterId: bigint;
  /** http://host:port; one listener each. Port 0 picks a free port (see PeerTransport.listenUrls). */
  listenUrls: URL[];
  /**
   * The listeners of listenUrls, bound already (before the member opened its data dir); their held
   * connections are served from start. Without them the transport binds listenUrls itself.
   */
  listeners?: BoundListener[];
  /** Peer TLS: https:// listen URLs are served and https:// peers dialled with it. */
  tls?: PeerTls;
  /** Where received snapshot files are written (created if missing). */
  snapshotDir: string;
  /** Everything received from a peer, in order, one call per received batch. */
  onMessages(from: NodeId, msgs: Message[]): void;
  /** A complete, checksummed, fsynced snapshot arrived; the callee owns file (moves/deletes it). */
  onSnapshot(msg: Message, file: string): void;
  /** A peer's request; the resolved Buffer is the answer, a throw/rejection becomes its RemoteError. */
  onRequest(from: NodeId, kind: string, body: Buffer): Promise<Buffer>;
  /** Messages to id were dropped (not connected, queue full, write failed): raft's ReportUnreachable. */
  onUnreachable(id: NodeId): void;
  /** Outcome of sendSnapshot: raft's ReportSnapshot. */
  onSnapshotStatus(id: NodeId, ok: boolean): void;
  /** A member removed from the cluster: its connections are refused with "member removed". */
  isRemoved?(id: NodeId): boolean;
  /**
   * A peer refused this member's stream, probe or snapshot connection with "member removed": this
   * member was removed from the cluster. Called once per transport (the first such refusal), after
   * the current turn, never after close(). The refusal is logged as before.
   */
  onRemoved?(by: NodeId): void;
  /**
   * The answer to a MEMBERS query (connection kind 4, a joining member's queryMembers()): opaque
   * bytes, at most 1 MiB (larger, or a throw: logged at error and the connection closed without an
   * answer). Without it such queries are refused (bad protocol). Called once per query.
   */
  membersInfo?(): Buffer;
  log: Logger;
  limits?: TransportLimits;
  /** Dial plus handshake, and an acceptor's wait for the hello. */
  dialTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** A connection that received nothing for this long is closed (and redialed by the dialer). */
  idleTimeoutMs?: number;
}

export interface ResolvedOptions {
  limits: Required<TransportLimits>;
  dialTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: Required<TransportLimits> = {
  maxFrameBytes: 16 * 1024 * 1024,
  queueBytes: 64 * 1024 * 1024,
  queueMessages: 4096,
  writeHighWaterBytes: 1024 * 1024,
  maxInflightRequests: 1024,
  maxSnapshotBytes: 8 * 1024 * 1024 * 1024,
};

/** The smallest maxFrameBytes: a snapshot chunk, a request with its headers, a MsgSnap. */
export const MIN_FRAME_BYTES = 64 * 1024;

function positiveInt(v: number | undefined, dflt: number, name: string, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`peer transport: ${name} must be an integer ≥ ${min}, got ${v}`);
  return v;
}

export function resolveOptions(o: PeerTransportOptions): ResolvedOptions {
  const l = o.limits ?? {};
  const limits: Required<TransportLimits> = {
    maxFrameBytes: positiveInt(l.maxFrameBytes, DEFAULT_LIMITS.maxFrameBytes, 'limits.maxFrameBytes', MIN_FRAME_BYTES),
    queueBytes: positiveInt(l.queueBytes, DEFAULT_LIMITS.queueBytes, 'limits.queueBytes'),
    queueMessages: positiveInt(l.queueMessages, DEFAULT_LIMITS.queueMessages, 'limits.queueMessages'),
    writeHighWaterBytes: positiveInt(l.writeHighWaterBytes, DEFAULT_LIMITS.writeHighWaterBytes, 'limits.writeHighWaterBytes'),
    maxInflightRequests: positiveInt(l.maxInflightRequests, DEFAULT_LIMITS.maxInflightRequests, 'limits.maxInflightRequests'),
    maxSnapshotBytes: positiveInt(l.maxSnapshotBytes, DEFAULT_LIMITS.maxSnapshotBytes, 'limits.maxSnapshotBytes', 0),
  };
  const backoffMinMs = positiveInt(o.backoffMinMs, 50, 'backoffMinMs');
  const backoffMaxMs = positiveInt(o.backoffMaxMs, 1000, 'backoffMaxMs');
  if (backoffMaxMs < backoffMinMs) throw new Error(`peer transport: backoffMaxMs (${backoffMaxMs}) < backoffMinMs (${backoffMinMs})`);
  if (o.selfId === 0n) throw new Error('peer transport: selfId must not be 0');
  if (o.listenUrls.length === 0) throw new Error('peer transport: no listen URLs');
  return {
    limits,
    dialTimeoutMs: positiveInt(o.dialTimeoutMs, 3000, 'dialTimeoutMs'),
    backoffMinMs,
    backoffMaxMs,
    idleTimeoutMs: positiveInt(o.idleTimeoutMs, 10_000, 'idleTimeoutMs', 100),
  };
}
