import { describe, expect, it } from 'vitest';
import {
  assertLinearizable,
  checkLinearizability,
  HistoryRecorder,
  type OpInput,
  type OpOutput,
  type Operation,
} from './linearizability';

// Hand-written histories: [client, input, call, ret | undefined (unknown), output].
type Row = [number, OpInput, number, number | undefined, OpOutput?];
function h(rows: Row[]): Operation[] {
  return rows.map(([client, input, call, ret, output], id) =>
    ret === undefined ? { id, client, input, call } : { id, client, input, call, ret, output },
  );
}
const get = (key: string): OpInput => ({ kind: 'get', key });
const put = (key: string, value: string): OpInput => ({ kind: 'put', key, value });
const cas = (key: string, expected: string | null, value: string): OpInput => ({ kind: 'cas', key, expected, value });
const del = (key: string): OpInput => ({ kind: 'delete', key });

describe('hand-made histories', () => {
  it('accepts concurrent overlapping ops that have a valid order', () => {
    // put a and put b overlap; reads during the overlap may see either, but once a read saw b and
    // returned, later reads cannot go back to a.
    const r = checkLinearizability(
      h([
        [1, put('k', 'a'), 0, 10, undefined],
        [2, put('k', 'b'), 2, 12, undefined],
        [3, get('k'), 3, 11, 'b'],
        [4, get('k'), 4, 13, 'a'], // a linearized after b is fine: put a may take effect last
        [3, get('k'), 14, 15, 'a'],
        [5, cas('k', 'a', 'c'), 16, 20, true],
        [6, get('k'), 17, 18, 'a'], // before the cas took effect
        [6, get('k'), 21, 22, 'c'],
        [1, del('k'), 23, 24, true],
        [2, get('k'), 25, 26, null],
        [2, del('k'), 27, 28, false],
        [3, cas('k', null, 'd'), 29, 30, true],
        [3, get('x'), 0, 1, null],
      ]),
    );
    expect(r.describe()).toMatch(/^linearizable/);
    expect(r.verdict).toBe('linearizable');
    expect(r.keys).toBe(2);
  });

  it('rejects a stale read: a get returns an older value after a later put returned', () => {
    const r = checkLinearizability(
      h([
        [1, put('k', 'a'), 0, 1],
        [1, put('other', 'z'), 0, 1],
        [1, put('k', 'b'), 2, 3],
        [2, get('other'), 2, 5, 'z'],
        [2, get('k'), 4, 5, 'a'],
      ]),
    );
    expect(r.verdict).toBe('violation');
    expect(r.violations.map((v) => v.key)).toEqual(['k']);
    const text = r.describe();
    expect(text).toContain('key "k": not linearizable');
    // The explanation is exactly the three ops involved, in time order.
    expect(r.violations[0].ops.map((op) => op.id)).toEqual([0, 2, 4]);
    expect(text).toMatch(/put\("k", "a"\)[\s\S]*put\("k", "b"\)[\s\S]*get\("k"\) → "a"/);
    expect(() => assertLinearizable(h([[1, put('k', 'a'), 0, 1], [1, put('k', 'b'), 2, 3], [2, get('k'), 4, 5, 'a']]))).toThrow(
      /key "k": not linearizable/,
    );
  });

  it('rejects a lost write (a read after an acknowledged put sees the old state)', () => {
    const r = checkLinearizability(h([[1, put('k', 'a'), 0, 1], [2, get('k'), 2, 3, null]]));
    expect(r.verdict).toBe('violation');
    expect(r.violations[0].key).toBe('k');
  });

  it('rejects a duplicated effect (a write applied twice, seen again after it was overwritten)', () => {
    const r = checkLinearizability(
      h([
        [1, put('k', 'a'), 0, 1],
        [2, put('k', 'b'), 2, 3],
        [3, get('k'), 4, 5, 'b'],
        [3, get('k'), 6, 7, 'a'], // 'a' again: the put was replayed
      ]),
    );
    expect(r.verdict).toBe('violation');
  });

  it('rejects CAS anomalies: two winners of the same compare, a failure that should have won, a success that should have failed', () => {
    const twoWinners = h([
      [1, put('k', 'v0'), 0, 1],
      [2, cas('k', 'v0', 'x'), 2, 10, true],
      [3, cas('k', 'v0', 'y'), 3, 11, true],
    ]);
    expect(checkLinearizability(twoWinners).verdict).toBe('violation');
    const wrongFailure = h([
      [1, put('k', 'v0'), 0, 1],
      [2, cas('k', 'v0', 'x'), 2, 3, false],
    ]);
    expect(checkLinearizability(wrongFailure).verdict).toBe('violation');
    const createOnExisting = h([
      [1, put('k', 'v0'), 0, 1],
      [2, cas('k', null, 'x'), 2, 3, true],
    ]);
    expect(checkLinearizability(createOnExisting).verdict).toBe('violation');
    const swapNotVisible = h([
      [1, cas('k', null, 'x'), 0, 1, true],
      [2, get('k'), 2, 3, null],
    ]);
    expect(checkLinearizability(swapNotVisible).verdict).toBe('violation');
    // And the valid variants pass.
    const oneWinner = h([
      [1, put('k', 'v0'), 0, 1],
      [2, cas('k', 'v0', 'x'), 2, 10, true],
      [3, cas('k', 'v0', 'y'), 3, 11, false],
      [4, get('k'), 12, 13, 'x'],
    ]);
    expect(checkLinearizability(oneWinner).verdict).toBe('linearizable');
  });

  it('rejects a delete that reports a key which did not exist', () => {
    expect(checkLinearizability(h([[1, del('k'), 0, 1, true]])).verdict).toBe('violation');
    expect(checkLinearizability(h([[1, del('k'), 0, 1, undefined]])).verdict).toBe('linearizable');
  });
});

describe('ops with an unknown outcome', () => {
  it('a timed-out put may have taken effect (later reads see it) …', () => {
    const r = checkLinearizability(
      h([
        [1, put('k', 'a'), 0, 1],
        [2, put('k', 'b'), 2, undefined],
        [3, get('k'), 10, 11, 'b'],
        [3, get('k'), 12, 13, 'b'],
      ]),
    );
    expect(r.verdict).toBe('linearizable');
  });

  it('… or never (later reads keep the old value)', () => {
    const r = checkLinearizability(
      h([
        [1, put('k', 'a'), 0, 1],
        [2, put('k', 'b'), 2, undefined],
        [3, get('k'), 10, 11, 'a'],
        [3, get('k'), 1000, 1001, 'a'],
      ]),
    );
    expect(r.verdict).toBe('linearizable');
  });

  it('… but not before its call, and not undone once seen', () => {
    const early = h([
      [1, put('k', 'a'), 0, 1],
      [3, get('k'), 2, 3, 'b'],
      [2, put('k', 'b'), 4, undefined],
    ]);
    expect(checkLinearizability(early).verdict).toBe('violation');
    const flicker = h([
      [1, put('k', 'a'), 0, 1],
      [2, put('k', 'b'), 2, undefined],
      [3, get('k'), 10, 11, 'b'],
      [3, get('k'), 12, 13, 'a'],
    ]);
    expect(checkLinearizability(flicker).verdict).toBe('violation');
  });

  it('an unknown cas both ways: applied when its compare held, or not applied', () => {
    const applied = h([
      [1, put('k', 'a'), 0, 1],
      [2, cas('k', 'a', 'b'), 2, undefined],
      [3, get('k'), 10, 11, 'b'],
    ]);
    expect(checkLinearizability(applied).verdict).toBe('linearizable');
    const notApplied = h([
      [1, put('k', 'a'), 0, 1],
      [2, cas('k', 'a', 'b'), 2, undefined],
      [3, get('k'), 10, 11, 'a'],
    ]);
    expect(checkLinearizability(notApplied).verdict).toBe('linearizable');
    // Its compare could never hold: it cannot have written 'b'.
    const impossible = h([
      [1, put('k', 'a'), 0, 1],
      [2, cas('k', 'zz', 'b'), 2, undefined],
      [3, get('k'), 10, 11, 'b'],
    ]);
    expect(checkLinearizability(impossible).verdict).toBe('violation');
  });

  it('many pending writes with unknown outcomes do not blow up the search (2^40 subsets)', () => {
    // 40 writes time out while a leader dies; reads then see one of them, then (wrongly) the old value.
    const rows: Row[] = [[0, put('k', 'a'), 0, 1]];
    for (let c = 1; c <= 40; c++) rows.push([c, put('k', `u${c}`), 2 + c * 0.01, undefined]);
    rows.push([50, get('k'), 10, 11, 'u7'], [50, get('k'), 12, 13, 'u7'], [51, get('k'), 14, 15, 'u30']);
    const ok = checkLinearizability(h(rows));
    expect(ok.verdict).toBe('linearizable');
    rows.push([50, get('k'), 16, 17, 'a']);
    const t0 = performance.now();
    const bad = checkLinearizability(h(rows));
    expect(bad.verdict).toBe('violation');
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(bad.steps).toBeLessThan(100_000);
  });

  it('a get with an unknown outcome constrains nothing', () => {
    expect(checkLinearizability(h([[1, put('k', 'a'), 0, 1], [2, get('k'), 2, undefined]])).verdict).toBe('linearizable');
  });
});

describe('bounds and input checks', () => {
  it('says unknown, not linearizable, when the step bound is reached', () => {
    const { history } = generate(rng(7), { ops: 400, keys: 1, clients: 10, unknownRate: 0 });
    const r = checkLinearizability(history, { maxStepsPerKey: 10 });
    expect(r.verdict).toBe('unknown');
    expect(r.ok).toBe(false);
    expect(r.undecided).toEqual(['k0']);
    expect(r.describe()).toContain('step bound reached');
    expect(() => assertLinearizable(history, { maxStepsPerKey: 10 })).toThrow(/step bound reached/);
  });

  it('rejects malformed histories with a clear error', () => {
    expect(() => checkLinearizability(h([[1, put('k', 'a'), 5, 1]]))).toThrow(/not before its call time/);
    expect(() => checkLinearizability(h([[1, get('k'), 0, 1, 5 as unknown as string]]))).toThrow(/get returns a string or null/);
    expect(() => checkLinearizability(h([[1, cas('k', 'a', 'b'), 0, 1, 'yes' as unknown as boolean]]))).toThrow(/cas returns a boolean/);
    expect(() => checkLinearizability(h([[1, { kind: 'inc', key: 'k' } as unknown as OpInput, 0, 1]]))).toThrow(/unknown op kind "inc"/);
    const dup = h([[1, put('k', 'a'), 0, 1], [1, put('k', 'b'), 2, 3]]);
    dup[1].id = 0;
    expect(() => checkLinearizability(dup)).toThrow(/duplicate op id 0/);
  });
});

describe('HistoryRecorder', () => {
  it('records call and return times from its clock, and unknown outcomes', () => {
    let t = 0;
    const rec = new HistoryRecorder({ now: () => (t += 1) });
    const a = rec.call('c1', put('k', 'a')); // t=1
    const b = rec.call('c2', get('k')); // t=2
    rec.ret(a, undefined); // t=3
    rec.ret(b, 'a'); // t=4
    const c = rec.call('c1', put('k', 'b')); // t=5
    rec.unknown(c);
    expect(rec.history()).toEqual([
      { id: 0, client: 'c1', input: put('k', 'a'), call: 1, ret: 3, output: undefined },
      { id: 1, client: 'c2', input: get('k'), call: 2, ret: 4, output: 'a' },
      { id: 2, client: 'c1', input: put('k', 'b'), call: 5 },
    ]);
    expect(rec.check().verdict).toBe('linearizable');
    expect(() => rec.ret(a, undefined)).toThrow(/already completed/);
    const d = rec.call('c3', cas('k', 'a', 'b'));
    expect(() => rec.ret(d, 'nope' as unknown as boolean)).toThrow(/cas returns a boolean/);
    rec.ret(d, true); // the bad answer left the op open
    expect(rec.size).toBe(4);
  });

  it('uses performance.now() by default', async () => {
    const rec = new HistoryRecorder();
    const op = rec.call(1, get('k'));
    await new Promise((r) => setTimeout(r, 5));
    rec.ret(op, null);
    const [rec0] = rec.history();
    expect(rec0.ret! - rec0.call).toBeGreaterThanOrEqual(4);
  });
});

// ---------------------------------------------------------------------------------------------
// Random histories from real sequential executions
// ---------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so every failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface GenOptions {
  ops: number;
  keys: number;
  clients: number;
  /** Share of writes whose client gave up (outcome unknown); half of those never took effect. */
  unknownRate: number;
}

/**
 * Runs ops one at a time against a real map (their linearization points are increasing), and gives each
 * a call time before and a return time after its point, with clients sequential (a client's next call
 * comes after its previous return or give-up), so calls of different clients overlap at random.
 */
function generate(rand: () => number, o: GenOptions): { history: Operation[] } {
  const state = new Map<string, string>();
  const freeAt = new Array<number>(o.clients).fill(0);
  const history: Operation[] = [];
  let t = 0;
  let seq = 0;
  for (let id = 0; id < o.ops; id++) {
    t += 0.2 + rand() * 2;
    // A client free before this point; when all are busy, the point moves on until one is.
    let c = Math.floor(rand() * o.clients);
    for (let tries = 0; freeAt[c] >= t; tries++) {
      c = (c + 1) % o.clients;
      if (tries >= o.clients) {
        t = Math.min(...freeAt) + 0.1;
        tries = 0;
      }
    }
    const key = `k${Math.floor(rand() * o.keys)}`;
    const cur = state.get(key) ?? null;
    const r = rand();
    let input: OpInput;
    if (r < 0.4) input = { kind: 'get', key };
    else if (r < 0.7) input = { kind: 'put', key, value: `v${seq++}` };
    else if (r < 0.9) input = { kind: 'cas', key, expected: rand() < 0.6 ? cur : `v${Math.floor(rand() * seq)}`, value: `v${seq++}` };
    else input = { kind: 'delete', key };
    const call = Math.max(freeAt[c], t - rand() * 8);
    const unknown = input.kind !== 'get' && rand() < o.unknownRate;
    const takesEffect = !unknown || rand() < 0.5;
    let output: OpOutput;
    if (takesEffect) {
      switch (input.kind) {
        case 'get':
          output = cur;
          break;
        case 'put':
          state.set(key, input.value);
          break;
        case 'cas':
          output = cur === input.expected;
          if (output) state.set(key, input.value);
          break;
        case 'delete':
          output = cur !== null;
          state.delete(key);
          break;
      }
    }
    if (unknown) {
      // The client gives up some time after the call, whether or not the op took effect.
      history.push({ id, client: c, input, call });
      freeAt[c] = Math.max(call + 1 + rand() * 8, takesEffect ? t : 0);
    } else {
      const ret = t + rand() * 8;
      history.push({ id, client: c, input, call, ret, output });
      freeAt[c] = ret;
    }
  }
  return { history };
}

/** Changes one result so that it differs from what the execution produced. */
function mutate(rand: () => number, history: Operation[]): Operation[] | undefined {
  const candidates = history.filter((op) => op.ret !== undefined && op.input.kind !== 'put');
  if (!candidates.length) return undefined;
  const victim = candidates[Math.floor(rand() * candidates.length)];
  const out = history.map((op) => ({ ...op }));
  const m = out[victim.id];
  if (m.input.kind === 'get') {
    const written = history.filter((op) => op.input.key === m.input.key && op.input.kind !== 'get' && op.input.kind !== 'delete');
    const options: (string | null)[] = [null, 'never-written', ...written.map((op) => (op.input as { value: string }).value)];
    const choices = options.filter((v) => v !== m.output);
    m.output = choices[Math.floor(rand() * choices.length)];
  } else {
    m.output = !m.output;
  }
  return out;
}

describe('random histories from real executions', () => {
  it('always pass (200 seeds, unknown outcomes included)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = rng(seed);
      const { history } = generate(rand, {
        ops: 20 + Math.floor(rand() * 150),
        keys: 1 + Math.floor(rand() * 4),
        clients: 1 + Math.floor(rand() * 8),
        unknownRate: rand() < 0.5 ? 0 : 0.15,
      });
      const r = checkLinearizability(history);
      if (!r.ok) throw new Error(`seed ${seed}: ${r.describe()}`);
    }
  });

  it('with one result changed, are mostly caught', () => {
    let caught = 0;
    let tried = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const rand = rng(10_000 + seed);
      const { history } = generate(rand, { ops: 60, keys: 2, clients: 4, unknownRate: 0.05 });
      const bad = mutate(rand, history);
      if (!bad) continue;
      tried++;
      const r = checkLinearizability(bad);
      expect(r.verdict, `seed ${10_000 + seed}`).not.toBe('unknown');
      if (r.verdict === 'violation') {
        caught++;
        // The explanation is itself non-linearizable and names the key.
        const v = r.violations[0];
        expect(checkLinearizability(v.ops).verdict).toBe('violation');
        expect(v.text).toContain(`key "${v.key}"`);
      }
    }
    // Some mutations stay linearizable (a read during overlapping writes may see either); most do not.
    expect(tried).toBeGreaterThan(190);
    expect(caught / tried).toBeGreaterThan(0.8);
  });

  it('checks 5 000 ops over 50 keys from 10 concurrent clients well under a second', () => {
    const rand = rng(42);
    const { history } = generate(rand, { ops: 5000, keys: 50, clients: 10, unknownRate: 0.02 });
    const maxOverlap = concurrency(history);
    expect(maxOverlap).toBeGreaterThanOrEqual(8);
    const t0 = performance.now();
    const r = checkLinearizability(history);
    const ms = performance.now() - t0;
    expect(r.verdict).toBe('linearizable');
    expect(ms).toBeLessThan(1000);
    // And a single changed read in it is found just as fast.
    const idx = history.findIndex((op, i) => i > 4000 && op.input.kind === 'get' && op.ret !== undefined);
    const bad = history.map((op) => ({ ...op }));
    bad[idx].output = 'never-written';
    const t1 = performance.now();
    const rb = checkLinearizability(bad);
    expect(performance.now() - t1).toBeLessThan(1000);
    expect(rb.violations.map((v) => v.key)).toEqual([bad[idx].input.key]);
    expect(rb.violations[0].ops.map((op) => op.id)).toContain(idx);
  });
});

/** Most ops in flight at once (unknown ones until their client's next call). */
function concurrency(history: Operation[]): number {
  const ev: [number, number][] = [];
  for (const op of history) if (op.ret !== undefined) ev.push([op.call, 1], [op.ret, -1]);
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of ev) max = Math.max(max, (cur += d));
  return max;
}
