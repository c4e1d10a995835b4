import { describe, expect, it } from 'vitest';
import { NO_CLIENT, NOT_LIVE, OpsTracker } from '../../src/ops/tracker';
import type { OpsReport } from '../../src/ops/tracker';
import type { TxnRequest } from '../../src/mvcc/types';
import { CompareResult, CompareTarget } from '../../src/mvcc/types';
import { ModelStore, mulberry32, truthOf } from './helpers';

// A seeded store and access pattern driven through the tracker as the server would (request calls with a
// client handle, data calls with the previous value size, the access epoch stored per key by the "key index":
// here ModelStore), and the answers computed independently from the model.

const b = (s: string) => Buffer.from(s, 'latin1');
const emptyRange = {
  limit: 0, revision: 0, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: false, countOnly: false,
  minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
};
const cmp = (target: number, key: string, n: bigint) => ({ result: CompareResult.EQUAL, target, key: b(key), rangeEnd: b(''), value: b(''), number: n });
const putOp = (key: string, v: number) => ({ put: { key: b(key), value: Buffer.alloc(v), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } });
const getOp = (key: string) => ({ range: { key: b(key), rangeEnd: b(''), ...emptyRange } });
const delOp = (key: string) => ({ deleteRange: { key: b(key), rangeEnd: b(''), prevKv: false } });

const RESOURCES_NS = ['pods', 'configmaps', 'events', 'services/specs', 'cilium.io/ciliumendpoints', 'leases'];
const RESOURCES_CLUSTER = ['nodes', 'namespaces', 'apiextensions.k8s.io/customresourcedefinitions'];
const ADDRESSES = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];

interface Sim {
  tracker: OpsTracker;
  model: ModelStore;
  t0: number;
  now: () => number;
  hot: Map<string, { reads: number; writes: number }>;
  requests: Map<string, number>;
  clients: Map<string, { connections: number; requests: number; opened: number }>;
}

function simulate(seed: number, ops: number, opts: { maxResources: number; maxClients: number; hotCapacity: number }): Sim {
  const rnd = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
  const t0 = 1_700_000_000_000 + Math.floor(rnd() * 1000);
  let t = t0;
  const tracker = new OpsTracker({ clock: () => t, ...opts });
  const model = new ModelStore();
  const epochNow = () => 1 + Math.floor((t - t0) / 1000); // the epoch as the design defines it
  const hot = new Map<string, { reads: number; writes: number }>();
  const requests = new Map<string, number>();
  const resourceOrder: string[] = [];
  const clients = new Map<string, { connections: number; requests: number; opened: number }>();
  const clientOrder: string[] = [];

  const countHot = (key: string, write: boolean) => {
    let h = hot.get(key);
    if (!h) hot.set(key, (h = { reads: 0, writes: 0 }));
    if (write) h.writes++;
    else h.reads++;
  };
  const countRequest = (verb: string, key: string) => {
    const tr = truthOf(key);
    let resource = tr.resource;
    if (tr.kube) {
      if (!resourceOrder.includes(resource)) resourceOrder.push(resource);
      if (resourceOrder.indexOf(resource) >= opts.maxResources) resource = '(other)';
    }
    const k = `${verb} ${resource}`;
    requests.set(k, (requests.get(k) ?? 0) + 1);
  };

  // Connections: handles held by "connections" of the simulated clients.
  const open: { handle: number; address: string }[] = [];
  const rowOf = (address: string) => {
    if (!clientOrder.includes(address)) clientOrder.push(address);
    return clientOrder.indexOf(address) < opts.maxClients ? address : '(other)';
  };
  const connect = () => {
    const address = pick(ADDRESSES);
    const handle = tracker.clientConnected(address);
    open.push({ handle, address });
    const row = rowOf(address);
    let c = clients.get(row);
    if (!c) clients.set(row, (c = { connections: 0, requests: 0, opened: 0 }));
    c.connections++;
    c.opened++;
  };
  const client = (): number => {
    if (open.length === 0 || rnd() < 0.02) connect();
    if (rnd() < 0.02 && open.length > 1) {
      const [gone] = open.splice(Math.floor(rnd() * open.length), 1);
      tracker.clientDisconnected(gone.handle);
      clients.get(rowOf(gone.address))!.connections--;
    }
    if (rnd() < 0.05) return NO_CLIENT;
    const c = pick(open);
    clients.get(rowOf(c.address))!.requests++;
    return c.handle;
  };

  const kubeKey = (): string => {
    if (rnd() < 0.25) return `/registry/${pick(RESOURCES_CLUSTER)}/obj-${Math.floor(rnd() * 60)}`;
    return `/registry/${pick(RESOURCES_NS)}/ns${Math.floor(rnd() * 12)}/obj-${Math.floor(rnd() * 40)}`;
  };
  const plainKey = (): string => pick(['/app/cfg/', '/app/state/', '/locks/', 'plain-', 'compact_rev_key'] as const) + (rnd() < 0.5 ? Math.floor(rnd() * 50) : '');
  const anyKey = () => (rnd() < 0.8 ? kubeKey() : plainKey());
  const value = () => (rnd() < 0.05 ? 2000 + Math.floor(rnd() * 20_000) : Math.floor(rnd() * 1500));

  const write = (key: string, v: number) => {
    const prev = model.set(key, v, epochNow());
    tracker.keyPut(key, v, prev);
  };
  const remove = (key: string) => {
    const prev = model.delete(key);
    if (prev >= 0) tracker.keyDeleted(key, prev);
    return prev >= 0;
  };
  const expectEpoch = () => {
    if (tracker.epoch !== epochNow()) throw new Error(`epoch ${tracker.epoch} != ${epochNow()}`);
  };

  for (let i = 0; i < ops; i++) {
    const r = rnd();
    if (r < 0.1) {
      t += Math.floor(rnd() * 5000); // time passes
      continue;
    }
    const c = r < 0.93 ? client() : NO_CLIENT; // lease ends come from no client
    if (r < 0.3) {
      // get
      const key = anyKey();
      tracker.onRange(key, false, false, c);
      expectEpoch();
      countRequest(truthOf(key).kube ? 'get' : 'range', key);
      countHot(key, false);
      model.touch(key, epochNow());
    } else if (r < 0.38) {
      // list or count over a prefix
      const key = rnd() < 0.8 ? truthOf(kubeKey()).group : pick(['/app/', '/locks/', '/registry/pods/']);
      const countOnly = rnd() < 0.3;
      tracker.onRange(key, true, countOnly, c);
      countRequest(truthOf(key).kube ? (countOnly ? 'count' : 'list') : 'range', key);
      countHot(key, false);
      if (!countOnly) for (const k of model.keys()) if (k.startsWith(key)) model.touch(k, epochNow());
    } else if (r < 0.55) {
      // kube create: If(create_revision = 0).Then(put)
      const key = anyKey();
      const v = value();
      const txn: TxnRequest = { compare: [cmp(CompareTarget.CREATE, key, 0n)], success: [putOp(key, v)], failure: [] };
      const ok = !model.kvs.has(key);
      if (ok) write(key, v);
      tracker.onTxn(txn, ok, c);
      countRequest(truthOf(key).kube ? 'create' : 'txn', key);
      if (ok) countHot(key, true);
    } else if (r < 0.7) {
      // kube update: If(mod_revision = N).Then(put).Else(get)
      const key = anyKey();
      const v = value();
      const txn: TxnRequest = { compare: [cmp(CompareTarget.MOD, key, 7n)], success: [putOp(key, v)], failure: [getOp(key)] };
      const ok = model.kvs.has(key) && rnd() < 0.8;
      if (ok) write(key, v);
      else model.touch(key, epochNow());
      tracker.onTxn(txn, ok, c);
      countRequest(truthOf(key).kube ? 'update' : 'txn', key);
      countHot(key, ok);
    } else if (r < 0.75) {
      // kube delete: If(mod_revision = N).Then(delete).Else(get)
      const key = anyKey();
      const txn: TxnRequest = { compare: [cmp(CompareTarget.MOD, key, 7n)], success: [delOp(key)], failure: [getOp(key)] };
      const ok = model.kvs.has(key);
      if (ok) remove(key);
      tracker.onTxn(txn, ok, c);
      countRequest(truthOf(key).kube ? 'delete' : 'txn', key);
      countHot(key, ok);
    } else if (r < 0.82) {
      const key = anyKey();
      const v = value();
      write(key, v);
      tracker.onPut(key, c);
      countRequest('put', key);
      countHot(key, true);
    } else if (r < 0.86) {
      const key = anyKey();
      remove(key);
      tracker.onDeleteRange(key, false, c);
      countRequest('delete', key);
      countHot(key, true);
    } else if (r < 0.93) {
      const key = rnd() < 0.5 ? anyKey() : truthOf(kubeKey()).group;
      tracker.onWatchCreate(key, key.endsWith('/'), c);
      countRequest('watch', key);
    } else {
      // a lease ends: its keys are deleted (no client)
      const keys = model.keys();
      if (keys.length === 0) continue;
      const key = pick(keys);
      remove(key);
      tracker.onLeaseDelete(key);
      countRequest('expire', key);
      countHot(key, true);
    }
  }
  t += 1500;
  return { tracker, model, t0, now: () => t, hot, requests, clients };
}

/** The exact parts of the report, computed from the model. */
function expected(sim: Sim, top: number, coldAfter: number) {
  const { model, t0 } = sim;
  const nowEpoch = 1 + Math.floor((sim.now() - t0) / 1000);
  const entries = [...model.kvs].sort((a, b) => (a[0] < b[0] ? -1 : 1));

  const longest = entries
    .map(([key, e]) => ({ key, bytes: e.size }))
    .sort((a, b) => b.bytes - a.bytes || (a.key < b.key ? -1 : 1))
    .slice(0, top);

  const ns = new Map<string, { keys: number; bytes: number }>();
  const groups = new Map<string, { keys: number; bytes: number; idleSeconds: number; maxIdleSeconds: number; liveKeys: number }>();
  for (const [key, e] of entries) {
    const tr = truthOf(key);
    const n = ns.get(tr.namespace) ?? { keys: 0, bytes: 0 };
    n.keys++;
    n.bytes += e.size;
    ns.set(tr.namespace, n);
    const g = groups.get(tr.group) ?? { keys: 0, bytes: 0, idleSeconds: Infinity, maxIdleSeconds: 0, liveKeys: 0 };
    g.liveKeys++;
    const idle = nowEpoch - Math.max(e.epoch, 1);
    if (idle >= coldAfter) {
      g.keys++;
      g.bytes += e.size;
      g.idleSeconds = Math.min(g.idleSeconds, idle);
      g.maxIdleSeconds = Math.max(g.maxIdleSeconds, idle);
    }
    groups.set(tr.group, g);
  }
  const namespaces = [...ns]
    .map(([namespace, n]) => ({ namespace, ...n }))
    .sort((a, b) => b.keys - a.keys || b.bytes - a.bytes || (a.namespace < b.namespace ? -1 : 1))
    .slice(0, top);
  const cold = [...groups]
    .filter(([, g]) => g.keys > 0)
    .map(([prefix, g]) => ({ prefix, ...g }))
    .sort((a, b) => b.bytes - a.bytes || b.keys - a.keys || (a.prefix < b.prefix ? -1 : 1))
    .slice(0, top);
  const requests = [...sim.requests]
    .map(([k, count]) => ({ verb: k.split(' ')[0], resource: k.split(' ')[1], count }))
    .sort((a, b) => b.count - a.count || (a.verb < b.verb ? -1 : a.verb > b.verb ? 1 : 0) || (a.resource < b.resource ? -1 : 1))
    .slice(0, top);
  const clients = [...sim.clients]
    .map(([address, c]) => ({ address, ...c }))
    .filter((c) => c.connections + c.requests + c.opened > 0)
    .sort((a, b) => b.requests - a.requests || b.connections - a.connections || (a.address < b.address ? -1 : 1))
    .slice(0, top);
  return { longest, namespaces, cold, requests, clients };
}

function checkHottest(report: OpsReport, sim: Sim, top: number): void {
  const bound = report.hotErrorBound;
  const n = [...sim.hot.values()].reduce((s, h) => s + h.reads + h.writes, 0);
  expect(report.hotAccesses).toBe(n);
  expect(bound).toBe(Math.floor(n / sim.tracker.hotSketch.capacity));
  expect(report.hottest.length).toBe(Math.min(top, sim.hot.size, sim.tracker.hotSketch.capacity));
  const bad: string[] = [];
  for (const row of report.hottest) {
    const t = sim.hot.get(row.key)!;
    if (!(row.error <= bound && t.reads >= row.reads && t.reads <= row.reads + row.error && t.writes >= row.writes && t.writes <= row.writes + row.error)) {
      bad.push(`${row.key} ${JSON.stringify(row)} truth ${JSON.stringify(t)}`);
    }
  }
  // No key left out is truly hotter than the last row's upper bound.
  const last = report.hottest[report.hottest.length - 1];
  const lastUpper = last.reads + last.writes + last.error;
  const shown = new Set(report.hottest.map((r) => r.key));
  for (const [key, t] of sim.hot) if (!shown.has(key) && t.reads + t.writes > lastUpper) bad.push(`${key} left out`);
  expect(bad).toEqual([]);
}

describe('OpsTracker against a seeded store and access pattern', () => {
  for (const [seed, hotCapacity] of [
    [11, 64],
    [12, 4096],
    [13, 128],
  ] as const) {
    it(`reports the exact parts exactly and hottest within its bound (seed ${seed}, m=${hotCapacity})`, () => {
      const sim = simulate(seed, 10_000, { maxResources: 6, maxClients: 3, hotCapacity });
      for (const [top, coldAfter] of [
        [5, 60],
        [10, 3600],
        [1000, 0],
        [3, 200],
      ] as const) {
        const report = sim.tracker.report({ top, coldAfterSeconds: coldAfter }, sim.model);
        const want = expected(sim, top, coldAfter);
        expect(report.longest).toEqual(want.longest);
        expect(report.namespaces).toEqual(want.namespaces);
        expect(report.cold).toEqual(want.cold);
        expect(report.requests).toEqual(want.requests);
        expect(report.clients).toEqual(want.clients);
        expect(report.scannedKeys).toBe(sim.model.kvs.size);
        expect(report.coldAfterSeconds).toBe(coldAfter);
        checkHottest(report, sim, top);
        if (top === 5 || top === 1000) expect(report.cold.length).toBeGreaterThan(0);
      }
      // The '(other)' rows were exercised.
      expect(sim.requests.has([...sim.requests.keys()].find((k) => k.endsWith(' (other)')) ?? '')).toBe(true);
      expect(sim.clients.has('(other)')).toBe(true);
    });
  }

  it('gives the same report in small steps as at once, and JSON of exactly the issue shape', () => {
    const sim = simulate(21, 5000, { maxResources: 256, maxClients: 4096, hotCapacity: 4096 });
    const whole = sim.tracker.report({ top: 8, coldAfterSeconds: 30 }, sim.model);
    const job = sim.tracker.startReport({ top: 8, coldAfterSeconds: 30 }, sim.model);
    let steps = 0;
    while (!job.step(7)) steps++;
    expect(steps).toBeGreaterThan(10);
    expect(job.result()).toEqual(whole);
    const json = JSON.parse(JSON.stringify(whole));
    expect(Object.keys(json)).toEqual(expect.arrayContaining(['longest', 'hottest', 'namespaces', 'requests', 'clients', 'cold']));
    expect(Object.keys(json.longest[0])).toEqual(expect.arrayContaining(['key', 'bytes']));
    expect(Object.keys(json.hottest[0])).toEqual(expect.arrayContaining(['key', 'reads', 'writes']));
    expect(Object.keys(json.namespaces[0])).toEqual(expect.arrayContaining(['namespace', 'keys', 'bytes']));
    expect(Object.keys(json.requests[0])).toEqual(expect.arrayContaining(['verb', 'resource', 'count']));
    expect(Object.keys(json.clients[0])).toEqual(expect.arrayContaining(['address', 'connections', 'requests']));
    expect(Object.keys(json.cold[0])).toEqual(expect.arrayContaining(['prefix', 'keys', 'bytes', 'idleSeconds']));
    // Without a source: the walked parts are empty, the rest as before.
    const noWalk = sim.tracker.report({ top: 8, coldAfterSeconds: 30 });
    expect([noWalk.longest, noWalk.cold, noWalk.scannedKeys]).toEqual([[], [], 0]);
    expect(noWalk.namespaces).toEqual(whole.namespaces);
  });

  it('seedNamespaces rebuilds the namespace counters from the live keys', () => {
    const sim = simulate(31, 5000, { maxResources: 256, maxClients: 4096, hotCapacity: 4096 });
    const before = sim.tracker.report({ top: 100 }).namespaces;
    const fresh = new OpsTracker({ clock: sim.now });
    fresh.seedNamespaces(sim.model);
    expect(fresh.report({ top: 100 }).namespaces).toEqual(before);
    sim.tracker.seedNamespaces(sim.model);
    expect(sim.tracker.report({ top: 100 }).namespaces).toEqual(before);
  });

  it('reset zeroes hottest, requests and client counts; keeps open connections and the key state', () => {
    const sim = simulate(41, 3000, { maxResources: 256, maxClients: 2, hotCapacity: 4096 });
    const before = sim.tracker.report({ top: 100, coldAfterSeconds: 10 }, sim.model);
    sim.tracker.reset();
    const after = sim.tracker.report({ top: 100, coldAfterSeconds: 10 }, sim.model);
    expect([after.hottest, after.requests, after.hotAccesses]).toEqual([[], [], 0]);
    expect(after.clients).toEqual(
      before.clients.filter((c) => c.connections > 0).map((c) => ({ ...c, requests: 0, opened: 0 })).sort((a, b) => b.connections - a.connections || (a.address < b.address ? -1 : 1)),
    );
    expect([after.longest, after.namespaces, after.cold]).toEqual([before.longest, before.namespaces, before.cold]);
    expect(after.sinceResetSeconds).toBe(0);
    // Freed client rows are reused: a new address gets a row of its own (maxClients 2).
    const open = after.clients.filter((c) => c.address !== '(other)').length;
    const h = sim.tracker.clientConnected('192.168.0.9');
    sim.tracker.onPut('/x', h);
    const row = sim.tracker.report({ top: 100 }).clients.find((c) => c.address === (open < 2 ? '192.168.0.9' : '(other)'));
    expect(row?.requests).toBe(1);
  });

  it('ages keys from the tracker start, at whole seconds, and refuses a source out of order', () => {
    let t = 5_000;
    const tracker = new OpsTracker({ clock: () => t });
    const store = new ModelStore();
    store.set('/registry/pods/a/x', 10, 0); // restored at start, never read since
    store.set('/registry/pods/a/y', 10, 0);
    tracker.seedNamespaces(store);
    t += 59_999;
    expect(tracker.report({ coldAfterSeconds: 60 }, store).cold).toEqual([]);
    t += 1;
    tracker.onRange('/registry/pods/a/y', false, false, NO_CLIENT);
    store.touch('/registry/pods/a/y', tracker.epoch);
    expect(tracker.epoch).toBe(61);
    expect(tracker.report({ coldAfterSeconds: 60 }, store).cold).toEqual([
      { prefix: '/registry/pods/a/', keys: 1, bytes: 28, idleSeconds: 60, maxIdleSeconds: 60, liveKeys: 2 },
    ]);
    const bad = { scan: (_a: string | undefined, _m: number, fn: (k: string, b: number, e: number) => void) => (_a ? undefined : (fn('b', 1, 0), fn('a', 1, 0), 'a')) };
    expect(() => tracker.report({}, bad)).toThrow(/ascending/);
    // tickPerRequest: false leaves the epoch to tick()
    const manual = new OpsTracker({ clock: () => t, tickPerRequest: false });
    t += 10_000;
    manual.onPut('/k', NO_CLIENT);
    expect(manual.epoch).toBe(1);
    expect(manual.tick()).toBe(11);
    expect(NOT_LIVE).toBe(-1);
  });
});
