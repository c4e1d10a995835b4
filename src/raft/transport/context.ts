// What a peer and the snapshot senders/receivers need from their transport.

import type { NodeId } from '../core/types';
import type { Link } from './link';
import type { Logger, LogLevel, PeerTransportOptions, ResolvedOptions } from './options';
import type { SocketFactory } from './sockets';

export interface TransportContext {
  readonly selfId: NodeId;
  readonly clusterId: bigint;
  readonly opts: ResolvedOptions;
  /** The caller's callbacks (onMessages, onRequest, …). */
  readonly callbacks: PeerTransportOptions;
  readonly sockets: SocketFactory;
  readonly log: Logger;
  isClosed(): boolean;
  /** Flush this peer's queue at the end of the current event-loop turn. */
  markDirty(peerId: NodeId): void;
  /**
   * Runs fn after the current turn: callbacks (onUnreachable, onSnapshotStatus) never run inside the
   * caller's send()/sendSnapshot(), and never after close().
   */
  defer(fn: () => void): void;
  /** onUnreachable(id) at the end of this turn, once per peer however many messages were dropped. */
  reportUnreachable(id: NodeId): void;
  /**
   * A peer refused a connection of ours with MEMBER_REMOVED: onRemoved(by) at the end of this turn,
   * once per transport.
   */
  reportRemoved(by: NodeId): void;
  /** Adds a link to the liveness timer's set (it leaves the set when it closes). */
  registerLink(link: Link): void;
  /**
   * Logs at level the first time a key is seen and then at most every 30 s while it repeats (at
   * debug in between): a peer that stays down or misconfigured does not flood the log.
   */
  logLimited(key: string, level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  /** Calls a user callback; an exception from it is logged, never propagated into the transport. */
  safeCall(what: string, fn: () => void): void;
}
