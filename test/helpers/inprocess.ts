import { expect } from 'vitest';
import type { EtcdServer } from '../../src/server/etcd-server';

// Waiting on members run in the test's own process (EtcdServer instances over loopback peers).

/** Polls cond every 10 ms for up to ms; resolves with its last value. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

/** The one leader every member names (within 10 s); fails the test otherwise. */
export async function leaderOf(ms: EtcdServer[]): Promise<EtcdServer> {
  expect(await until(() => ms.filter((m) => m.isLeader).length === 1 && ms.every((m) => m.leader !== 0n && m.leader === ms.find((x) => x.isLeader)!.memberId), 10_000)).toBe(true);
  return ms.find((m) => m.isLeader)!;
}
