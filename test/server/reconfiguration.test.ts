import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { hashKV } from '../../src/mvcc/hash';
import { defaultConfig, type ServerConfig } from '../../src/server/config';
import { EtcdServer } from '../../src/server/etcd-server';
import { leaderOf, until } from '../helpers/inprocess';
import { freePort } from '../helpers/servers';
import { putReq, rangeReq } from '../helpers/stores';

// Member changes in one process over real peer connections on loopback: a member added with
// MemberAdd and started with --initial-cluster-state existing joins (by the log, or by a snapshot when
// the log no longer reaches back), learners, promotion, removal (of a follower, of the leader),
// leadership moves, a refused change that stays refused after a restart, and the strict checks.
// The same operations through etcdctl against real etcd are in test/api/membership-compare.test.ts.

const dirs: string[] = [];
const servers = new Set<EtcdServer>();
afterEach(async () => {
  for (const s of servers) await s.close().catch(() => {});
  servers.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const token = () => `t-${Math.random().toString(36).slice(2)}`;

interface Spec {
  cfg: ServerConfig;
  removed: number;
}

async function spec(name: string, initial: string, tok: string, port: number, over: Partial<ServerConfig> = {}): Promise<Spec> {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-reconf-'));
  dirs.push(dir);
  const url = `http://127.0.0.1:${port}`;
  return {
    removed: 0,
    cfg: {
      ...defaultConfig(),
      name,
      dataDir: dir,
      backend: 'lmdb',
      unsafeNoFsync: true,
      initialCluster: initial,
      initialClusterToken: tok,
      initialAdvertisePeerUrls: [url],
      listenPeerUrls: [new URL(url)],
      advertiseClientUrls: [`http://127.0.0.1:${port + 10000}`],
      heartbeatIntervalMs: 20,
      electionTimeoutMs: 200,
      // The 5 s health interval of the strict check is tested on its own below.
      strictReconfigCheck: false,
      ...over,
    },
  };
}

async function start(sp: Spec): Promise<EtcdServer> {
  const s = await EtcdServer.open(sp.cfg, { onRemoved: () => void (sp.removed++) });
  servers.add(s);
  return s;
}

async function stop(s: EtcdServer): Promise<void> {
  servers.delete(s);
  await s.close();
}

/** A one-member cluster with a peer listener, ready to grow. */
async function single(over: Partial<ServerConfig> = {}): Promise<{ s: EtcdServer; sp: Spec; tok: string; initial: string[] }> {
  const tok = token();
  const port = await freePort();
  const entry = `m1=http://127.0.0.1:${port}`;
  const sp = await spec('m1', entry, tok, port, over);
  const s = await start(sp);
  expect(await until(() => s.isLeader, 5000)).toBe(true);
  // Started (its name published), as etcd's strict checks count members.
  expect(await until(() => s.members()[0]?.name === 'm1', 5000)).toBe(true);
  return { s, sp, tok, initial: [entry] };
}

/** MemberAdd through `via`, then the new member started on a fresh data dir with the printed cluster. */
async function grow(via: EtcdServer, initial: string[], tok: string, name: string, opts: { learner?: boolean; over?: Partial<ServerConfig> } = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const added = await via.addMember([url], !!opts.learner);
  expect(added.member).toMatchObject({ name: '', peerUrls: [url], isLearner: !!opts.learner });
  expect(added.members.map((m) => m.id)).toContain(added.member.id);
  initial.push(`${name}=${url}`);
  const sp = await spec(name, initial.join(','), tok, port, { initialClusterState: 'existing', ...opts.over });
  const s = await start(sp);
  expect(s.memberId).toBe(added.member.id);
  expect(s.clusterId).toBe(via.clusterId);
  // Caught up at least to its own addition (before that it cannot judge member changes itself).
  expect(await until(() => s.members().some((m) => m.id === s.memberId), 10_000)).toBe(true);
  return { s, sp };
}

async function retry<T>(fn: () => Promise<T>, again: (err: unknown) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!again(err) || Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function put(s: EtcdServer, k: string, v: string) {
  return s.put(putReq(k, v));
}

async function sameData(ms: EtcdServer[]): Promise<void> {
  const rev = Math.max(...ms.map((m) => m.currentRevision()));
  expect(await until(() => ms.every((m) => m.currentRevision() === rev), 10_000)).toBe(true);
  const hashes = await Promise.all(ms.map((m) => hashKV(m.store, 0)));
  expect(new Set(hashes.map((h) => h.hash)).size).toBe(1);
}

describe('member changes in one process', () => {
  it('grows 1 -> 3 by MemberAdd and --initial-cluster-state existing; the new members hold every key', async () => {
    const { s: m1, tok, initial } = await single();
    for (let i = 0; i < 20; i++) await put(m1, `k${i}`, `v${i}`);
    const { s: m2 } = await grow(m1, initial, tok, 'm2');
    await put(m1, 'after-m2', 'x');
    const { s: m3 } = await grow(m2, initial, tok, 'm3'); // asked through a follower
    const all = [m1, m2, m3];
    await leaderOf(all);
    for (const m of all) await put(m, `from-${m.cfg.name}`, 'y');
    await sameData(all);
    // Names and client URLs are published once each member serves.
    expect(await until(() => all.every((m) => m.members().every((x) => x.name !== '')), 5000)).toBe(true);
    expect(m3.members().map((x) => x.name).sort()).toEqual(['m1', 'm2', 'm3']);
    const r = await m3.linearizableRead().then(() => m3.range(rangeReq('k0')));
    expect(r.kvs[0].value.toString()).toBe('v0');
  });

  it('a member joining after the log was compacted catches up from a snapshot of the backend', async () => {
    const { s: m1, tok, initial } = await single({ snapshotCount: 20, snapshotCatchUpEntries: 20 });
    for (let i = 0; i < 70; i++) await put(m1, `k${i}`, `v${i}`);
    // The last snapshot point is before the new member's addition: what it is sent must name it (raft
    // refuses a snapshot whose configuration lacks the receiver), so the leader sends the backend at its
    // applied index with the configuration then (etcd's createMergedSnapshotMessage).
    const { s: m2 } = await grow(m1, initial, tok, 'm2', { over: { snapshotCount: 20, snapshotCatchUpEntries: 20 } });
    await sameData([m1, m2]);
    await put(m1, 'last', 'z');
    await sameData([m1, m2]);
    const r = m2.range(rangeReq('k0', { serializable: true }));
    expect('kvs' in r && r.kvs[0].value.toString()).toBe('v0');
  });

  it('a learner receives the log, is not counted in quorum, serves only what etcd lets it, and is promoted once in sync', async () => {
    const { s: m1, tok, initial } = await single();
    await put(m1, 'a', '1');
    const { s: l } = await grow(m1, initial, tok, 'l', { learner: true });
    expect(await until(() => l.isLearner, 10_000)).toBe(true);
    // A one-voter cluster with a learner: the voter alone is a quorum (the learner does not count).
    await put(m1, 'b', '2');
    await sameData([m1, l]);
    // At most one learner (etcd 3.4).
    await expect(m1.addMember([`http://127.0.0.1:${await freePort()}`], true)).rejects.toBe(Errors.tooManyLearners);
    // Promoting a voter is refused at apply.
    await expect(m1.promoteMember(m1.memberId)).rejects.toBe(Errors.memberNotLearner);
    // In sync once the leader has heard that the learner holds (90% of) its log: etcd's clients retry.
    const members = await retry(() => m1.promoteMember(l.memberId), (err) => err === Errors.learnerNotReady, 15_000);
    expect(members.find((m) => m.id === l.memberId)!.isLearner).toBe(false);
    expect(await until(() => !l.isLearner, 10_000)).toBe(true);
    // Two voters now: both needed for a write, and either may lead.
    await put(l, 'c', '3');
    await sameData([m1, l]);
  });

  it('a learner far behind is not promoted: "can only promote a learner member which is in sync with leader"', async () => {
    const { s: m1, tok, initial } = await single();
    for (let i = 0; i < 50; i++) await put(m1, `k${i}`, 'v');
    // Added, but never started: its match stays 0.
    const added = await m1.addMember([`http://127.0.0.1:${await freePort()}`], true);
    await expect(m1.promoteMember(added.member.id)).rejects.toBe(Errors.learnerNotReady);
    // A follower asks the leader, which gives the same answer.
    void tok;
    void initial;
  });

  it('MoveLeader hands leadership to each member in turn; refused for a learner, an unknown member, and on a follower', async () => {
    // etcd's default timing, so that the bound below is etcd's election timeout (1 s), not a test's.
    const timing = { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 };
    const { s: m1, tok, initial } = await single(timing);
    const { s: m2 } = await grow(m1, initial, tok, 'm2', { over: timing });
    const { s: m3 } = await grow(m1, initial, tok, 'm3', { over: timing });
    const all = [m1, m2, m3];
    await leaderOf(all);
    // A writer on every member throughout: no write may wait long (etcd's raft drops the proposals that
    // reach the leader mid-handover, and those clients wait for their request timeout).
    let writing = true;
    let slowest = 0;
    let acked = 0;
    const writers = all.map(async (m, w) => {
      for (let i = 0; writing; i++) {
        const t0 = Date.now();
        await put(m, `w${w}-${i}`, 'v');
        slowest = Math.max(slowest, Date.now() - t0);
        acked++;
      }
    });
    for (const target of [m2, m3, m1, m3]) {
      const lead = await leaderOf(all);
      const follower = all.find((m) => m !== lead)!;
      await expect(follower.moveLeader(target.memberId)).rejects.toBe(Errors.notLeader);
      await lead.moveLeader(target.memberId);
      expect(target.isLeader).toBe(true);
      await put(target, `under-${target.cfg.name}`, 'v');
    }
    writing = false;
    await Promise.all(writers);
    expect(acked).toBeGreaterThan(30);
    // At most an election timeout around each handover (a dropped write would wait 7 s).
    expect(slowest).toBeLessThan(m1.cfg.electionTimeoutMs);
    const lead = await leaderOf(all);
    await expect(lead.moveLeader(12345n)).rejects.toBe(Errors.badLeaderTransferee);
    const added = await lead.addMember([`http://127.0.0.1:${await freePort()}`], true);
    await expect(lead.moveLeader(added.member.id)).rejects.toBe(Errors.badLeaderTransferee);
    await sameData(all);
  });

  it('a removed follower stops; restarted, it is refused by the others and stops again', async () => {
    const { s: m1, tok, initial } = await single();
    const { s: m2 } = await grow(m1, initial, tok, 'm2');
    const { s: m3, sp: sp3 } = await grow(m1, initial, tok, 'm3');
    await leaderOf([m1, m2, m3]);
    const members = await m1.removeMember(m3.memberId);
    expect(members.map((m) => m.id)).not.toContain(m3.memberId);
    expect(await until(() => sp3.removed === 1, 5000)).toBe(true);
    await stop(m3);
    await put(m1, 'without-m3', 'v');
    // Removing it again: etcd's "member not found" (a removed ID is never reused).
    await expect(m2.removeMember(m3.memberId)).rejects.toBe(Errors.memberNotFound);
    // Its data dir still says it is a member; the others refuse it and it learns it was removed.
    const again = await start(sp3);
    expect(await until(() => sp3.removed === 2, 10_000)).toBe(true);
    await stop(again);
    await sameData([m1, m2]);
  });

  it('removing the leader: it steps down once the change commits, and the others go on', async () => {
    const { s: m1, sp: sp1, tok, initial } = await single();
    const { s: m2 } = await grow(m1, initial, tok, 'm2');
    const { s: m3 } = await grow(m1, initial, tok, 'm3');
    const lead = await leaderOf([m1, m2, m3]);
    expect(lead).toBe(m1);
    await m1.removeMember(m1.memberId);
    expect(await until(() => sp1.removed === 1, 5000)).toBe(true);
    const next = await leaderOf([m2, m3]);
    await put(next, 'after-leader-removal', 'v');
    await sameData([m2, m3]);
    expect(m2.members().map((m) => m.id).sort()).toEqual([m2.memberId, m3.memberId].sort());
  });

  it('a change refused at apply (a peer URL in use) answers etcd\'s error, and stays refused after a restart', async () => {
    const { s: m1, sp: sp1, tok, initial } = await single();
    const { s: m2 } = await grow(m1, initial, tok, 'm2');
    const used = m1.members().find((m) => m.id === m2.memberId)!.peerUrls;
    // Another URL beside it, so the new member's ID (from its URLs and the second) is not m2's.
    await expect(m1.addMember([...used, 'http://127.0.0.1:1'], false)).rejects.toBe(Errors.peerUrlExist);
    await expect(m1.updateMember(987654321n, ['http://127.0.0.1:1'])).rejects.toBe(Errors.memberNotFound);
    await expect(m1.addMember(['127.0.0.1:2380'], false)).rejects.toBe(Errors.memberBadUrls);
    // Valid for etcd, but no Plinth member could reach them (no unix sockets): refused rather than added (an
    // added member nobody can dial would stay down).
    await expect(m1.addMember(['unix://127.0.0.1:2380'], false)).rejects.toBe(Errors.memberBadUrls);
    await expect(m1.updateMember(m2.memberId, ['unix://127.0.0.1:2380'])).rejects.toBe(Errors.memberBadUrls);
    await expect(m1.updateMember(m2.memberId, ['http://h:1/path'])).rejects.toBe(Errors.memberBadUrls);
    await put(m1, 'x', 'y');
    await stop(m1);
    const again = await start(sp1);
    await leaderOf([again, m2]);
    // Still two members, and two voters in raft: the refused change did not slip in at the replay.
    expect(again.members()).toHaveLength(2);
    await put(again, 'after-restart', 'v');
    await sameData([again, m2]);
  });

  it('MemberUpdate changes a member\'s peer URLs on every member', async () => {
    const { s: m1, tok, initial } = await single();
    const { s: m2 } = await grow(m1, initial, tok, 'm2');
    // The same address under another name: the live connection stays, later dials use it.
    const old = m1.members().find((m) => m.id === m2.memberId)!.peerUrls[0];
    const renamed = old.replace('127.0.0.1', 'localhost');
    const members = await m1.updateMember(m2.memberId, [renamed]);
    expect(members.find((m) => m.id === m2.memberId)!.peerUrls).toEqual([renamed]);
    expect(await until(() => m2.members().find((m) => m.id === m2.memberId)!.peerUrls[0] === renamed, 5000)).toBe(true);
    await put(m2, 'after-update', 'v');
  });
});

describe('--strict-reconfig-check', () => {
  it('refuses a new voter until every voter has been connected for 5 s ("unhealthy cluster"), then takes it', async () => {
    const { s: m1, tok, initial } = await single({ strictReconfigCheck: true });
    const { s: m2 } = await grow(m1, initial, tok, 'm2', { over: { strictReconfigCheck: true } });
    await leaderOf([m1, m2]);
    expect(await until(() => m1.members().every((m) => m.name !== ''), 5000)).toBe(true);
    await expect(m1.addMember([`http://127.0.0.1:${await freePort()}`], false)).rejects.toBe(Errors.unhealthy);
    // A learner changes no quorum, but etcd checks the connections for it too.
    await expect(m1.addMember([`http://127.0.0.1:${await freePort()}`], true)).rejects.toBe(Errors.unhealthy);
    await new Promise((r) => setTimeout(r, 5200));
    const l = await m1.addMember([`http://127.0.0.1:${await freePort()}`], true);
    await m1.removeMember(l.member.id);
    const r = await m1.addMember([`http://127.0.0.1:${await freePort()}`], false);
    expect(r.members).toHaveLength(3);
    // Two of three started: removing a started one leaves 1 of 2, below quorum; a fourth would need 3
    // started (etcd's IsStarted: a published name).
    await expect(m1.removeMember(m2.memberId)).rejects.toBe(Errors.memberNotEnoughStarted);
    await expect(m1.addMember([`http://127.0.0.1:${await freePort()}`], false)).rejects.toBe(Errors.memberNotEnoughStarted);
    // The never-started one may go.
    await m1.removeMember(r.member.id);
  }, 20_000);
});
