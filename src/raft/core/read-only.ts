// Read-index requests waiting for a quorum's heartbeat acknowledgements (etcd-io/raft's
// read_only.go, ReadOnlySafe only): each request remembers the commit index when it arrived; once a
// quorum has answered a heartbeat carrying its context, that request and all queued before it are
// answered with their index.
import type { Message, NodeId } from './types';

/**
 * Most read requests waiting at once. Followers forward their members' reads, so a peer can grow
 * the queue; past this, new requests are dropped (raft drops reads silently in other cases too: the
 * caller retries after its timeout).
 */
export const MAX_PENDING_READ_INDEX = 16384;

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

/** The key a request's context is found by: its bytes, one character each. */
export function contextKey(ctx: Buffer | undefined): string {
  return ctx ? ctx.toString('latin1') : '';
}

export class ReadOnly {
  readonly pendingReadIndex = new Map<string, ReadIndexStatus>();
  readIndexQueue: string[] = [];

  /** Queues a request read at `index`; a context already waiting is not queued twice. */
  addRequest(index: number, m: Message): boolean {
    const s = contextKey(m.context);
    if (this.pendingReadIndex.has(s)) return true;
    if (this.readIndexQueue.length >= MAX_PENDING_READ_INDEX) return false;
    this.pendingReadIndex.set(s, { index, req: m, acks: new Map() });
    this.readIndexQueue.push(s);
    return true;
  }

  /** Records id's heartbeat acknowledgement of a context; the acks so far, or undefined if unknown. */
  recvAck(id: NodeId, context: Buffer | undefined): Map<NodeId, boolean> | undefined {
    const rs = this.pendingReadIndex.get(contextKey(context));
    if (!rs) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Dequeues the request with m's context and every one queued before it. */
  advance(m: Message): ReadIndexStatus[] {
    const ctx = contextKey(m.context);
    const found = this.readIndexQueue.indexOf(ctx);
    if (found < 0) return [];
    const done = this.readIndexQueue.slice(0, found + 1);
    this.readIndexQueue = this.readIndexQueue.slice(found + 1);
    const rss: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.pendingReadIndex.get(k);
      if (!rs) throw new Error('cannot find corresponding read state from pending map');
      rss.push(rs);
      this.pendingReadIndex.delete(k);
    }
    return rss;
  }

  /** The context of the newest waiting request ('' if none): heartbeats carry it. */
  lastPendingRequestCtx(): string {
    return this.readIndexQueue.length === 0 ? '' : this.readIndexQueue[this.readIndexQueue.length - 1];
  }
}
