import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { leaseService, MAX_FORWARDED_RENEWALS } from '../../src/api/lease-service';
import type { EtcdServer } from '../../src/server/etcd-server';

// A keep-alive stream on a follower: renewals forwarded to the leader are bounded per stream (#16). With
// the leader slow to answer, the stream's requests are held back by flow control once
// MAX_FORWARDED_RENEWALS are under way, and let through again once half are answered; every renewal is
// answered, in the order asked.

describe('lease keep-alive stream on a follower', () => {
  it('holds the stream\'s requests while too many forwarded renewals are under way, answering all in order', async () => {
    const pending: ((ttl: number) => void)[] = [];
    const server = {
      header: () => ({ clusterId: 1n, memberId: 2n, revision: 3, raftTerm: 4 }),
      leaseRenew: () => new Promise<number>((r) => pending.push(r)),
    } as unknown as EtcdServer;
    const holds: boolean[] = [];
    const written: { ID: string; TTL: number }[] = [];
    const call = Object.assign(new EventEmitter(), {
      holdRequests: (h: boolean) => holds.push(h),
      write: (m: { ID: string; TTL: number }) => void written.push(m),
      end: () => {},
    });
    (leaseService(server).LeaseKeepAlive as (c: unknown) => void)(call);
    const n = MAX_FORWARDED_RENEWALS + 10; // what one more stream window lets through, in part
    for (let i = 1; i <= n; i++) call.emit('data', { ID: String(i) });
    expect(holds).toEqual([true]);
    expect(pending).toHaveLength(n);
    // The leader answers in turn; the hold is lifted once half of the bound is left.
    for (let i = 0; i < n; i++) {
      pending[i](30 + i);
      await new Promise((r) => setImmediate(r));
    }
    expect(holds).toEqual([true, false]);
    expect(written.map((m) => m.ID)).toEqual(Array.from({ length: n }, (_, i) => String(i + 1)));
    expect(written.map((m) => m.TTL)).toEqual(Array.from({ length: n }, (_, i) => 30 + i));
  });
});
