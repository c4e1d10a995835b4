import { EtcdError, Errors } from '../errors';
import type { Lessor } from '../lease/lessor';

// Keep-alives and TimeToLive are the leader's business (only it runs lease expiry): a follower
// forwards them to the leader over the peer transport, as etcd forwards them over HTTP to the leader's
// /leases endpoints. If the member asked is not the leader (it just lost the role), the follower
// waits for the new leader and tries again, until the request timeout.

const KEEPALIVE = 'lease-keepalive';
const TIME_TO_LIVE = 'lease-ttl';

export interface LeaseForwardingDeps {
  lessor: Lessor;
  isLeader(): boolean;
  leader(): bigint;
  request(to: bigint, kind: string, body: Buffer, timeoutMs: number): Promise<Buffer>;
  waitLeader(timeoutMs: number): Promise<bigint>;
  timeoutMs: number;
}

export interface TimeToLive {
  ttl: number;
  grantedTtl: number;
  keys: Buffer[];
}

export class LeaseForwarder {
  constructor(private readonly d: LeaseForwardingDeps) {}

  /** The TTL the lease got, or etcd's lease-not-found error. */
  renew(id: bigint): number | Promise<number> {
    if (this.d.isLeader()) return this.d.lessor.renew(id);
    return this.forward(KEEPALIVE, idBytes(id)).then((b) => Number(b.readBigInt64BE(0)));
  }

  timeToLive(id: bigint, withKeys: boolean): Promise<TimeToLive | undefined> {
    if (this.d.isLeader()) return Promise.resolve(this.localTimeToLive(id, withKeys));
    const body = Buffer.allocUnsafe(9);
    body.writeBigInt64BE(id, 0);
    body[8] = withKeys ? 1 : 0;
    return this.forward(TIME_TO_LIVE, body).then(decodeTimeToLive);
  }

  /** The leader's side of a forwarded request. */
  async serve(kind: string, body: Buffer): Promise<Buffer> {
    if (!this.d.isLeader()) throw Errors.notLeader;
    if (kind === KEEPALIVE && body.length === 8) {
      const ttl = this.d.lessor.renew(body.readBigInt64BE(0));
      const out = Buffer.allocUnsafe(8);
      out.writeBigInt64BE(BigInt(ttl));
      return out;
    }
    if (kind === TIME_TO_LIVE && body.length === 9) return encodeTimeToLive(this.localTimeToLive(body.readBigInt64BE(0), body[8] === 1));
    throw new Error(`bad lease request ${kind}`);
  }

  private localTimeToLive(id: bigint, withKeys: boolean): TimeToLive | undefined {
    const lease = this.d.lessor.lookup(id);
    if (!lease) return undefined;
    return {
      ttl: this.d.lessor.remainingSeconds(lease),
      grantedTtl: lease.ttl,
      keys: withKeys ? [...lease.keys].sort().map((k) => Buffer.from(k, 'latin1')) : [],
    };
  }

  private async forward(kind: string, body: Buffer): Promise<Buffer> {
    const deadline = Date.now() + this.d.timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw Errors.timeout;
      if (this.d.isLeader()) return this.serve(kind, body);
      const lead = await this.d.waitLeader(left);
      try {
        return await this.d.request(lead, kind, body, Math.max(1, deadline - Date.now()));
      } catch (err) {
        // The leader's own answers (lease not found) are final; anything else is tried again.
        const known = knownError((err as Error).message);
        if (known && known !== Errors.notLeader) throw known;
        if (Date.now() >= deadline) throw Errors.timeout;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

function knownError(message: string): EtcdError | undefined {
  for (const e of [Errors.leaseNotFound, Errors.notLeader]) if (message === e.message || message.endsWith(e.message)) return e;
  return undefined;
}

function idBytes(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(id);
  return b;
}

/** [i64 ttl][i64 granted][u32 keys]([u32 length][key])*; ttl -1: no such lease. */
function encodeTimeToLive(t: TimeToLive | undefined): Buffer {
  if (!t) {
    const b = Buffer.alloc(20);
    b.writeBigInt64BE(-1n, 0);
    return b;
  }
  const size = 20 + t.keys.reduce((n, k) => n + 4 + k.length, 0);
  const b = Buffer.allocUnsafe(size);
  b.writeBigInt64BE(BigInt(t.ttl), 0);
  b.writeBigInt64BE(BigInt(t.grantedTtl), 8);
  b.writeUInt32BE(t.keys.length, 16);
  let p = 20;
  for (const k of t.keys) {
    b.writeUInt32BE(k.length, p);
    p += 4 + k.copy(b, p + 4);
  }
  return b;
}

function decodeTimeToLive(b: Buffer): TimeToLive | undefined {
  const ttl = Number(b.readBigInt64BE(0));
  if (ttl < 0) return undefined;
  const n = b.readUInt32BE(16);
  const keys: Buffer[] = [];
  let p = 20;
  for (let i = 0; i < n; i++) {
    const len = b.readUInt32BE(p);
    keys.push(Buffer.from(b.subarray(p + 4, p + 4 + len)));
    p += 4 + len;
  }
  return { ttl, grantedTtl: Number(b.readBigInt64BE(8)), keys };
}
