// The cluster harness against real etcd 3.4 (skipped where etcd is not installed) and Plinth: the same
// tests against a 3-member cluster of each. One cluster with proxies serves every test of a kind, in
// order.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterIsolationIsExact, recordOp, startCluster, type Cluster, type ClusterClient } from './cluster';
import { checkLinearizability, HistoryRecorder, type OpInput, type Operation } from './linearizability';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE } from './servers';

const kinds = [...(ETCD_AVAILABLE ? (['etcd'] as const) : []), 'plinth' as const];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

describe.skipIf(kinds.length === 0).each(kinds)('a 3-member %s cluster', (kind) => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ kind, size: 3, proxies: true });
  });
  afterAll(async () => {
    await c?.close();
  });

  it('agrees on a leader; a write on one member is read on another; every peer link is attributed', async () => {
    const l = await c.leader();
    for (let i = 0; i < 3; i++) {
      const s = await c.status(i);
      expect(BigInt(s.header.member_id)).toBe(c.members[i].id);
      expect(BigInt(s.leader)).toBe(c.members[l].id);
    }
    const a = c.client((l + 1) % 3);
    const b = c.client((l + 2) % 3);
    expect(await a.put('greeting', 'hello')).toMatchObject({ ok: true });
    expect(await b.get('greeting')).toMatchObject({ ok: true, value: 'hello' });
    expect(await b.cas('greeting', 'hello', 'bye')).toMatchObject({ ok: true, value: true });
    expect(await a.cas('greeting', 'hello', 'again')).toMatchObject({ ok: true, value: false });
    expect(await a.cas('fresh', null, 'x')).toMatchObject({ ok: true, value: true });
    expect(await b.delete('fresh')).toMatchObject({ ok: true, value: true });
    expect(await a.get('fresh')).toMatchObject({ ok: true, value: null });
    if (clusterIsolationIsExact) {
      // Each member's proxy knows which member dialed each link through it. etcd members dial each
      // other both ways; Plinth keeps one link per pair, dialed by the member with the smaller ID.
      for (const m of c.members) {
        const from = new Set(m.proxy!.stats().connections.map((x) => x.from));
        const others = c.members.filter((o) => o !== m && (kind === 'etcd' || o.id < m.id)).map((o) => o.id);
        expect([...from].filter((f) => f !== undefined).sort()).toEqual(others.sort());
        expect(m.proxy!.stats().connections.every((x) => x.to === m.id)).toBe(true);
      }
    }
  });

  it('kill -9 of the leader: a new leader is elected; the old one restarts and serves the new data', async () => {
    const old = await c.leader();
    await c.kill(old);
    expect(c.members[old].state).toBe('stopped');
    const t0 = Date.now();
    const next = await c.waitForLeader(15_000, { not: old });
    const electedMs = Date.now() - t0;
    expect(next).not.toBe(old);
    expect(electedMs).toBeLessThan(10_000);
    const w = c.client(next);
    expect(await w.put('after-kill', 'v1')).toMatchObject({ ok: true });
    await c.restart(old);
    expect(c.members[old].state).toBe('running');
    const r = c.client(old);
    expect(await eventually('the restarted member to serve the new value', 10_000, async () => {
      const got = await r.get('after-kill');
      return got.ok && got.value === 'v1' ? got : undefined;
    })).toMatchObject({ value: 'v1' });
    await c.waitForLeader(10_000); // all three agree again
  });

  it('an isolated member: the majority keeps serving; the isolated one serves no linearizable read and loses its leader; heal', async () => {
    const l = await c.waitForLeader(10_000);
    const f = (l + 1) % 3;
    const other = (l + 2) % 3;
    const onF = c.client(f, { timeoutMs: 1500 });
    expect(await onF.put('iso', 'before')).toMatchObject({ ok: true });
    expect(await onF.get('iso', { serializable: true })).toMatchObject({ value: 'before' });

    c.isolate(f);
    expect(c.members[f].isolated).toBe(true);
    // The majority: writes commit, reads on the other follower see them.
    expect(await c.client(l).put('iso', 'during')).toMatchObject({ ok: true });
    expect(await c.client(other).get('iso')).toMatchObject({ ok: true, value: 'during' });
    // The isolated member: its linearizable read cannot reach a leader; its own (serializable) view is stale.
    const read = await onF.get('iso');
    expect(read.ok).toBe(false);
    expect(await onF.get('iso', { serializable: true })).toMatchObject({ ok: true, value: 'before' });
    // Its election timer fires: it no longer names the leader.
    const lost = await eventually('the isolated member to lose its leader', 8000, async () => {
      const s = await c.status(f);
      return BigInt(s.leader) !== c.members[l].id ? s : undefined;
    });
    expect(BigInt(lost.leader)).not.toBe(c.members[l].id);
    // The rest of the cluster never stopped agreeing (isolated members are not asked).
    expect(await c.leader()).toBe(await c.waitForLeader(10_000));

    c.heal(f);
    expect(c.members[f].isolated).toBe(false);
    await eventually('the healed member to serve linearizable reads of the new value', 15_000, async () => {
      const got = await onF.get('iso');
      return got.ok && got.value === 'during' ? got : undefined;
    });
    await c.waitForLeader(15_000);
  });

  it('pause/resume (SIGSTOP/SIGCONT) and stop/restart (SIGTERM) of a follower', async () => {
    const l = await c.waitForLeader(10_000);
    const f = (l + 1) % 3;
    const onF = c.client(f, { timeoutMs: 800 });
    c.pause(f);
    expect(c.members[f].state).toBe('paused');
    expect(await c.client(l).put('paused', 'yes')).toMatchObject({ ok: true });
    expect(await onF.get('paused', { serializable: true })).toMatchObject({ ok: false, error: { codeName: 'DEADLINE_EXCEEDED' } });
    c.resume(f);
    await eventually('the resumed member to serve', 10_000, async () => {
      const got = await onF.get('paused');
      return got.ok && got.value === 'yes' ? got : undefined;
    });
    const pid = c.members[f].pid!;
    await c.stop(f);
    expect(c.members[f].state).toBe('stopped');
    expect(c.members[f].pid).toBeUndefined();
    expect(alive(pid)).toBe(false);
    expect(c.members[f].logs()).toContain(`exited: `);
    await c.restart(f);
    expect(c.members[f].pid).not.toBe(pid);
    expect(await c.client(f).get('paused')).toMatchObject({ ok: true, value: 'yes' });
  });

  it('a history of concurrent clients on every member during a leader kill is linearizable', async () => {
    const l = await c.waitForLeader(10_000);
    const history = new HistoryRecorder();
    const keys = ['h0', 'h1', 'h2'];
    let seq = 0;
    let stop = false;
    const worker = async (clientId: number, client: ClusterClient) => {
      let rand = clientId * 7919 + 1;
      const next = () => (rand = (rand * 1103515245 + 12345) % 2147483648) / 2147483648;
      let lastSeen: string | null = null;
      while (!stop) {
        const key = keys[Math.floor(next() * keys.length)];
        const r = next();
        const value = `c${clientId}-${seq++}`;
        const input: OpInput =
          r < 0.45 ? { kind: 'get', key } : r < 0.8 ? { kind: 'put', key, value } : { kind: 'cas', key, expected: next() < 0.5 ? lastSeen : null, value };
        const res = await recordOp(history, clientId, client, input);
        if (res.ok && input.kind === 'get') lastSeen = res.value as string | null;
        if (!res.ok) await sleep(50); // a dead member answers at once: do not spin
      }
    };
    // Two clients per member, each on its own channel.
    const workers = [0, 1, 2, 3, 4, 5].map((id) => worker(id, c.client(id % 3, { timeoutMs: 1000 })));
    await sleep(1500);
    await c.kill(l);
    await c.waitForLeader(15_000, { not: l });
    await sleep(1500);
    await c.restart(l);
    await sleep(1000);
    stop = true;
    await Promise.all(workers);

    const ops = history.history();
    const done = ops.filter((op) => op.ret !== undefined);
    // Not vacuous: many answered ops, writes and non-null reads among them, before and after the kill.
    expect(done.length).toBeGreaterThan(100);
    expect(done.filter((op) => op.input.kind === 'get' && op.output !== null).length).toBeGreaterThan(20);
    expect(done.filter((op) => op.input.kind !== 'get').length).toBeGreaterThan(20);
    const result = checkLinearizability(ops);
    expect(result.verdict, result.describe()).toBe('linearizable');

    // And the same history with one read made stale is caught: the checker sees this history's anomalies.
    const stale = makeStaleRead(ops);
    expect(stale, 'a completed put, a later one, and a read after both').toBeDefined();
    const bad = checkLinearizability(stale!);
    expect(bad.verdict).toBe('violation');
    expect(bad.violations[0].text).toContain('not linearizable');
  });

  it('close ends exactly the processes it started and removes the data', async () => {
    const pids = c.members.map((m) => m.pid!);
    expect(pids.every(alive)).toBe(true);
    const proxyPorts = c.members.map((m) => m.proxy!.port);
    await c.close();
    expect(pids.some(alive)).toBe(false);
    expect(existsSync(c.dir)).toBe(false);
    // The proxies no longer listen.
    for (const port of proxyPorts) {
      await expect(new Promise((res, rej) => connect(port, '127.0.0.1').once('connect', res).once('error', rej))).rejects.toThrow(/ECONNREFUSED/);
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Changes one read that follows two completed puts of its key to return the older put's value. */
function makeStaleRead(ops: Operation[]): Operation[] | undefined {
  const puts = ops.filter((op) => op.input.kind === 'put' && op.ret !== undefined);
  for (const g of ops) {
    if (g.input.kind !== 'get' || g.ret === undefined) continue;
    const before = puts.filter((p) => p.input.key === g.input.key && p.ret! < g.call);
    for (const p1 of before) {
      const p2 = before.find((p) => p.call > p1.ret!);
      if (!p2) continue;
      const out = ops.map((op) => ({ ...op }));
      out[g.id].output = (p1.input as { value: string }).value;
      return out;
    }
  }
  return undefined;
}

function ctl(endpoint: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile('etcdctl', ['--endpoints', endpoint, '--command-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 }, (err, stdout, stderr) =>
      res({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout, stderr }),
    ),
  );
}

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('growing and shrinking a %s cluster', (kind) => {
  it('planMember + startJoining: the added member joins through its proxy; markRemoved: skipped by leader() and endpoints(); a learner is not a voter; close ends every process', async () => {
    const c = await startCluster({ kind, size: 1, proxies: true });
    try {
      const plan = await c.planMember('m2');
      expect(plan.peerUrl).toBe(plan.proxy!.url);
      const add = await ctl(c.members[0].endpoint, ['member', 'add', 'm2', `--peer-urls=${plan.peerUrl}`]);
      expect(add.code, add.stderr).toBe(0);
      const idHex = /^Member +([0-9a-f]+) added/.exec(add.stdout)![1];
      const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add.stdout)![1];
      // The id MemberAdd gave (not derived from the URLs alone), so that its proxy knows it from the start.
      const j = await c.startJoining({ name: 'm2', initialCluster, id: BigInt(`0x${idHex}`) });
      expect(j).toBe(1);
      const m2 = c.members[j];
      expect(m2).toMatchObject({ name: 'm2', idHex, peerUrl: plan.peerUrl, state: 'running', learner: false, removed: false });
      expect(m2.proxy?.targetId).toBe(m2.id);
      expect(c.endpoints()).toEqual([c.members[0].endpoint, m2.endpoint]);
      expect(c.indexOf(idHex)).toBe(j);
      expect(await c.waitForLeader()).toBe(0);
      expect(BigInt((await c.status(j)).leader)).toBe(c.members[0].id);
      if (clusterIsolationIsExact) {
        // The joined member's proxy, and m1's, name who dials through them (Plinth keeps one link per pair,
        // dialed by the member with the smaller ID; etcd dials both ways).
        const [lo, hi] = [c.members[0], m2].sort((a, b) => (a.id < b.id ? -1 : 1));
        const dialers = (m: typeof lo) => new Set(m.proxy!.stats().connections.map((x) => x.from));
        expect(dialers(hi).has(lo.id)).toBe(true);
        if (kind === 'etcd') expect(dialers(lo).has(hi.id)).toBe(true);
      }

      // Removed: it ends by itself, and is no longer asked.
      // (etcd refuses it until m2 has been connected for 5 s: "unhealthy cluster".)
      let rm = await ctl(c.members[0].endpoint, ['member', 'remove', idHex]);
      for (const deadline = Date.now() + 15_000; rm.stderr.includes('unhealthy cluster') && Date.now() < deadline; ) {
        await sleep(250);
        rm = await ctl(c.members[0].endpoint, ['member', 'remove', idHex]);
      }
      expect(rm.code, rm.stderr).toBe(0);
      c.markRemoved(j);
      expect(m2.removed).toBe(true);
      expect(await c.waitExit(j, 15_000)).toBe(0);
      expect(m2.exit).toBe(0);
      expect(c.endpoints()).toEqual([c.members[0].endpoint]);
      expect(c.activeIndexes()).toEqual([0]);
      expect(await c.leader()).toBe(0);

      // A learner: asked who leads, but not counted among the voters; then promoted.
      const plan3 = await c.planMember('m3');
      const add3 = await ctl(c.members[0].endpoint, ['member', 'add', 'm3', '--learner', `--peer-urls=${plan3.peerUrl}`]);
      expect(add3.code, add3.stderr).toBe(0);
      // Without an id: learned from the member once it serves.
      const k = await c.startJoining({ name: 'm3', initialCluster: /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add3.stdout)![1], learner: true });
      expect(c.members[k]).toMatchObject({ index: 2, learner: true, state: 'running', idHex: /^Member +([0-9a-f]+) added/.exec(add3.stdout)![1] });
      expect((await c.status(k)).isLearner).toBe(true);
      expect(await c.leader()).toBe(0);
      c.markPromoted(k);
      expect(c.members[k].learner).toBe(false);

      // The removed member, started again, is refused and ends; close() ends the others.
      c.respawn(j);
      expect(await c.waitExit(j, 20_000)).toBe(0);
      c.respawn(j);
      const pids = [c.members[0].pid!, c.members[k].pid!, c.members[j].pid!];
      await c.close();
      expect(pids.some(alive)).toBe(false);
      expect(existsSync(c.dir)).toBe(false);
    } finally {
      await c.close();
    }
  }, 90_000);
});
