// Membership changes on a running cluster of real processes on loopback, under writers on every member,
// as an operator makes them with etcdctl: grow 1 -> 3 -> 5 (member add, then the new member started with
// the printed --initial-cluster and --initial-cluster-state existing), replace a member (remove, then
// add a new one on a new data dir; the removed one, restarted, is refused and ends), add a learner once
// the leader's log no longer reaches back (it catches up from a snapshot), promote it, move the
// leadership to every member in turn, remove the leader. At the end: no acknowledged write is lost on
// any member, every member holds the same keys (HashKV at one revision), and the clients' history on a
// few shared keys is linearizable.
//
// The same scenario runs against real etcd 3.4 (which shows that the test itself is right) and Plinth.
import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { recordOp, startCluster, type Cluster, type ClusterClient } from '../helpers/cluster';
import { EtcdGrpc } from '../helpers/etcd-grpc';
import { checkLinearizability, HistoryRecorder, type OpInput } from '../helpers/linearizability';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE } from '../helpers/servers';

const kinds = [...(ETCD_AVAILABLE ? (['etcd'] as const) : []), 'plinth' as const];

/** Small, so that a member joining late is sent a snapshot. */
const SNAPSHOT_COUNT = 100;
/**
 * Raft index past which the leader's log no longer starts at 1: etcd keeps 5000 entries behind its
 * last snapshot (SnapshotCatchUpEntries), Plinth min(5000, snapshot count); a margin on top.
 */
// Both keep 5000 entries behind a snapshot (etcd's SnapshotCatchUpEntries) for followers that lag a little.
const COMPACTED_PAST = { etcd: 5000 + 3 * SNAPSHOT_COUNT, plinth: 5000 + 3 * SNAPSHOT_COUNT };
const UNHEALTHY = 'etcdserver: unhealthy cluster';
/** A member that serves may not be counted started on the leader yet (its publish not applied there). */
const NOT_STARTED = 'etcdserver: re-configuration failed due to not enough started members';
const NOT_IN_SYNC = 'etcdserver: can only promote a learner member which is in sync with leader';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

interface Ctl {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(endpoints: string[], args: string[]): Promise<Ctl> {
  return new Promise((res) => {
    execFile('etcdctl', ['--endpoints', endpoints.join(','), '--command-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 }, (err, stdout, stderr) =>
      res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stdout, stderr: stderr.split('\n').filter((l) => l && !l.startsWith('{"level"')).join('\n') }),
    );
  });
}

/** How often each refusal that passes was met (printed at the end). */
const retried = new Map<string, number>();

/** Runs an etcdctl command until it is not refused for a cause that passes (not yet healthy, not yet in sync). */
async function ctlRetrying(endpoints: () => string[], args: string[], retryOn: string[], timeoutMs = 25_000): Promise<Ctl> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await etcdctl(endpoints(), args);
    const cause = retryOn.find((m) => r.stderr.includes(m));
    if (r.code === 0 || !cause || Date.now() > deadline) return r;
    retried.set(cause, (retried.get(cause) ?? 0) + 1);
    await sleep(250);
  }
}

interface Acked {
  key: string;
  value: string;
  revision: number;
}

/**
 * Writers on members: each puts unique keys (every acknowledged one is checked at the end) and runs
 * put / get / cas on a few shared keys (recorded for the linearizability checker). A member's writers
 * wait while it is a learner or not running, and end once it is removed.
 */
class Writers {
  readonly history = new HistoryRecorder();
  readonly acked: Acked[] = [];
  /** Acknowledged writes per member index. */
  readonly perMember = new Map<number, number>();
  private readonly runs: Promise<void>[] = [];
  private stopped = false;

  constructor(private readonly c: Cluster, private readonly workersPerMember = 2) {}

  add(i: number): void {
    for (let k = 0; k < this.workersPerMember; k++) this.runs.push(this.worker(i, `${i}.${k}`));
  }

  private async worker(i: number, id: string): Promise<void> {
    const m = this.c.members[i];
    let client: ClusterClient | undefined;
    let seq = 0;
    let rand = [...id].reduce((a, ch) => a * 31 + ch.charCodeAt(0), 7) % 2147483648;
    const next = () => (rand = (rand * 1103515245 + 12345) % 2147483648) / 2147483648;
    while (!this.stopped && !m.removed) {
      if (m.state !== 'running' || m.learner) {
        client?.close();
        client = undefined;
        await sleep(50);
        continue;
      }
      client ??= this.c.client(i, { timeoutMs: 2000 });
      const r = next();
      if (r < 0.6) {
        const key = `u/${id}/${++seq}`;
        const value = `v${seq}`;
        const res = await client.put(key, value);
        if (res.ok) {
          this.acked.push({ key, value, revision: res.revision });
          this.perMember.set(i, (this.perMember.get(i) ?? 0) + 1);
        } else await sleep(20);
      } else {
        const key = `s${Math.floor(next() * 4)}`;
        const input: OpInput = r < 0.75 ? { kind: 'get', key } : r < 0.9 ? { kind: 'put', key, value: `${id}-${++seq}` } : { kind: 'cas', key, expected: null, value: `${id}-${++seq}` };
        const res = await recordOp(this.history, id, client, input);
        if (!res.ok) await sleep(20);
      }
    }
    client?.close();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.runs);
  }
}

/** Adds a member with etcdctl on the leader, checks the ETCD_* lines, starts it with them; answers its index. */
async function addMember(c: Cluster, name: string, opts: { learner?: boolean } = {}): Promise<number> {
  const plan = await c.planMember(name);
  const l = await c.waitForLeader(20_000);
  const r = await ctlRetrying(() => [c.members[l].endpoint], ['member', 'add', name, ...(opts.learner ? ['--learner'] : []), `--peer-urls=${plan.peerUrl}`], [UNHEALTHY, NOT_STARTED]);
  expect(r.code, `member add ${name}: ${r.stderr}`).toBe(0);
  const m = /^Member +([0-9a-f]+) added to cluster +([0-9a-f]+)\n\nETCD_NAME="(.*)"\nETCD_INITIAL_CLUSTER="(.*)"\nETCD_INITIAL_ADVERTISE_PEER_URLS="(.*)"\nETCD_INITIAL_CLUSTER_STATE="(.*)"\n$/.exec(r.stdout);
  expect(m, r.stdout).not.toBeNull();
  const [, idHex, , etcdName, initialCluster, advertised, state] = m!;
  expect({ etcdName, advertised, state }).toEqual({ etcdName: name, advertised: plan.peerUrl, state: 'existing' });
  // The running members and the new one, each name=peer URL.
  const expected = [...c.activeIndexes().map((i) => `${c.members[i].name}=${c.members[i].peerUrl}`), `${name}=${plan.peerUrl}`];
  expect(initialCluster.split(',').sort()).toEqual(expected.sort());
  return c.startJoining({ name, initialCluster, learner: opts.learner, id: BigInt(`0x${idHex}`), readyTimeoutMs: 45_000 });
}

/** etcdctl member list on every active member: each lists exactly these names, all started. */
async function expectMembers(c: Cluster, names: string[]): Promise<void> {
  for (const i of c.activeIndexes()) {
    if (c.members[i].learner) continue; // a learner answers no MemberList
    const r = await etcdctl([c.members[i].endpoint], ['member', 'list']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((line) => line.split(', '));
    expect(rows.map((x) => x[2]).sort(), `member list on ${c.members[i].name}`).toEqual([...names].sort());
    expect(rows.every((x) => x[1] === 'started')).toBe(true);
  }
}

async function removeMember(c: Cluster, victim: number, via: number): Promise<void> {
  const r = await ctlRetrying(() => [c.members[via].endpoint], ['member', 'remove', c.members[victim].idHex], [UNHEALTHY]);
  expect(r.code, `member remove ${c.members[victim].name}: ${r.stderr}`).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^Member +${c.members[victim].idHex} removed from cluster +[0-9a-f]+\\n$`));
  c.markRemoved(victim);
}

/** Waits until every active member has applied the same index and is at the same revision. */
async function converge(c: Cluster): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const st = await Promise.all(c.activeIndexes().map((i) => c.status(i, 2000).catch(() => undefined)));
    const applied = new Set(st.map((s) => s?.raftAppliedIndex));
    const revs = new Set(st.map((s) => s?.header.revision));
    if (st.every(Boolean) && applied.size === 1 && revs.size === 1) return Number(st[0]!.header.revision);
    if (Date.now() > deadline) throw new Error(`members did not converge: ${JSON.stringify(st.map((s) => s && [s.raftAppliedIndex, s.header.revision]))}`);
    await sleep(100);
  }
}

async function waitFor(what: string, timeoutMs: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('membership changes on a running %s cluster under writers', (kind) => {
  it(
    'grow 1 -> 3 -> 5, replace a member, a learner caught up by snapshot and promoted, leadership moved to every member, the leader removed: nothing lost, one state',
    async () => {
      const t0 = Date.now();
      const phases: string[] = [];
      const phase = (name: string) => phases.push(`${name} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const c = (cluster = await startCluster({ kind, size: 1, snapshotCount: SNAPSHOT_COUNT }));
      const w = new Writers(c);
      w.add(0);
      try {
        await sleep(500);

        // 1. Grow 1 -> 3 -> 5, one member at a time.
        for (const name of ['m2', 'm3', 'm4', 'm5']) {
          w.add(await addMember(c, name));
          if (name === 'm3') await expectMembers(c, ['m1', 'm2', 'm3']);
        }
        await expectMembers(c, ['m1', 'm2', 'm3', 'm4', 'm5']);
        phase('grown to 5');

        // 2. Replace a follower: remove it (it ends by itself), add a new member on a new data dir.
        let l = await c.waitForLeader(20_000);
        const victim = c.activeIndexes().find((i) => i !== l)!;
        await removeMember(c, victim, l);
        expect(await c.waitExit(victim, 20_000), `${c.members[victim].name}, removed, ends by itself`).toBe(0);
        w.add(await addMember(c, 'm6'));
        const names = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'].filter((n) => n !== c.members[victim].name);
        await expectMembers(c, names);
        // The removed member restarted on its data dir: the others refuse it, it ends again.
        c.respawn(victim);
        expect(await c.waitExit(victim, 20_000), `${c.members[victim].name}, restarted after removal, ends by itself`).toBe(0);
        phase('replaced a member');

        // 3. A learner, once the leader's log no longer reaches back to the start: sent a snapshot.
        l = await c.waitForLeader(20_000);
        const booster = c.client(l, { timeoutMs: 2000 });
        let boost = 0;
        await waitFor(`the leader's raft index past ${COMPACTED_PAST[kind]}`, 60_000, async () => {
          const s = await c.status(l, 2000).catch(() => undefined);
          if (s && Number(s.raftIndex) >= COMPACTED_PAST[kind]) return true;
          // The writers may be slow: add writes of our own (checked like theirs).
          await Promise.all(
            Array.from({ length: 20 }, async () => {
              const key = `u/boost/${++boost}`;
              const res = await booster.put(key, 'b');
              if (res.ok) w.acked.push({ key, value: 'b', revision: res.revision });
            }),
          );
          return false;
        });
        const j = await addMember(c, 'm7', { learner: true });
        await waitFor('the learner to apply a snapshot', 20_000, () => /applied incoming Raft snapshot/.test(c.members[j].logs()));
        expect((await c.status(j)).isLearner).toBe(true);
        const onLearner = c.client(j);
        expect(await onLearner.put('learner-write', 'x')).toMatchObject({ ok: false, error: { codeName: 'UNAVAILABLE', details: 'etcdserver: rpc not supported for learner' } });
        // It serves serializable reads of what it was sent.
        const early = w.acked[0];
        expect(await onLearner.get(early.key, { serializable: true })).toMatchObject({ ok: true, value: early.value });
        const pr = await ctlRetrying(() => [c.members[l].endpoint], ['member', 'promote', c.members[j].idHex], [NOT_IN_SYNC, UNHEALTHY]);
        expect(pr.code, pr.stderr).toBe(0);
        expect(pr.stdout).toMatch(new RegExp(`^Member +${c.members[j].idHex} promoted in cluster +[0-9a-f]+\\n$`));
        c.markPromoted(j);
        w.add(j);
        await waitFor('the promoted member to say it is no learner', 10_000, async () => !(await c.status(j)).isLearner);
        // It takes writes as a voter (before the leadership moves around, which leaves its writers little time).
        // It takes writes as a voter (before the leadership moves around, which leaves its writers little time).
        await waitFor('a write acknowledged through the promoted member', 20_000, () => (w.perMember.get(j) ?? 0) > 0);
        await expectMembers(c, [...names, 'm7']);
        phase('learner caught up by snapshot and promoted');

        // 4. The leadership moved to every member in turn.
        l = await c.waitForLeader(20_000);
        const voters = () => c.activeIndexes().filter((i) => !c.members[i].learner);
        for (const t of [...voters().filter((i) => i !== l), l]) {
          const from = await c.waitForLeader(20_000);
          const r = await etcdctl(voters().map((i) => c.members[i].endpoint), ['move-leader', c.members[t].idHex]);
          expect(r.code, `move-leader to ${c.members[t].name}: ${r.stderr}`).toBe(0);
          expect(r.stdout).toBe(`Leadership transferred from ${c.members[from].idHex} to ${c.members[t].idHex}\n`);
          await waitFor(`every member to name ${c.members[t].name} leader`, 10_000, async () => (await c.leader().catch(() => -1)) === t);
        }
        phase('leadership moved around');

        // 5. The leader removed (asked on a follower): it ends; the rest elect another and go on.
        l = await c.waitForLeader(20_000);
        const via = voters().find((i) => i !== l)!;
        await removeMember(c, l, via);
        expect(await c.waitExit(l, 20_000), 'the removed leader ends by itself').toBe(0);
        const nl = await c.waitForLeader(20_000);
        expect(nl).not.toBe(l);
        await expectMembers(c, [...names, 'm7'].filter((n) => n !== c.members[l].name));
        const writesBefore = w.acked.length;
        await waitFor('writes after the leader was removed', 15_000, () => w.acked.length > writesBefore + 20);
        phase('leader removed');
      } finally {
        await w.stop();
      }

      // Every member took writes while it was a voter.
      for (const m of c.members) expect(w.perMember.get(m.index) ?? 0, `acknowledged writes on ${m.name}`).toBeGreaterThan(0);
      expect(w.acked.length).toBeGreaterThan(500);

      // One state everywhere, nothing acknowledged lost.
      const rev = await converge(c);
      const conns = c.activeIndexes().map((i) => new EtcdGrpc(c.members[i].endpoint));
      try {
        const hashes = await Promise.all(conns.map((g) => g.call<{ hash: number }>('maintenance', 'HashKV', { revision: rev }, 10_000)));
        expect(new Set(hashes.map((h) => h.hash)).size, `HashKV at ${rev}: ${hashes.map((h) => h.hash).join(', ')}`).toBe(1);
        for (const g of conns) {
          const r = await g.call<{ kvs: { key: Buffer; value: Buffer; mod_revision: string }[] }>('kv', 'Range', { key: Buffer.from('u/'), range_end: Buffer.from('u0'), serializable: true }, 20_000);
          const stored = new Map(r.kvs.map((kv) => [kv.key.toString(), kv]));
          const lost = w.acked.filter((a) => {
            const kv = stored.get(a.key);
            return !kv || kv.value.toString() !== a.value || Number(kv.mod_revision) !== a.revision;
          });
          expect(lost.slice(0, 5), `acknowledged writes missing or changed on ${g.endpoint} (${lost.length} of ${w.acked.length})`).toEqual([]);
        }
      } finally {
        conns.forEach((g) => g.close());
      }
      const verdict = checkLinearizability(w.history.history());
      expect(verdict.verdict, verdict.describe()).toBe('linearizable');
      console.log(
        `${kind}: ${phases.join('; ')}; ${w.acked.length} acknowledged writes; total ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
          `retried: ${[...retried].map(([m, n]) => `${n} x "${m}"`).join(', ') || 'none'}`,
      );
      retried.clear();
    },
    170_000,
  );
});
