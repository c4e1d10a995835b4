// A linearizability checker for recorded client histories of a key-value store, for the cluster fault
// tests: did the cluster behave like one register per key, whatever the faults?
//
// The search is Wing & Gong's, with Lowe's improvements as porcupine implements them: the history is a
// list of call and return events in time order; the search linearizes, from the front, any op whose call
// comes before the first pending return and which the model accepts, backtracking when it meets the
// return of an op it has not yet placed; each (set of linearized ops, model state) is tried once (the
// memo). The register model is P-compositional (Herlihy & Wing: a history is linearizable iff each key's
// sub-history is), so every key is checked on its own, which keeps the searches small.
//
// An op whose outcome is unknown (its call timed out, its connection failed) may take effect at any point
// after its call, or never: it has no return event, so the search may place it anywhere after its call,
// and it is not required to place it at all.

/** The operations of the model: one register per key; null is "no such key". */
export type OpInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  /** Succeeds iff the key holds `expected` (null: the key does not exist), then writes `value`. */
  | { kind: 'cas'; key: string; expected: string | null; value: string }
  | { kind: 'delete'; key: string };

/**
 * What an op returned: get → the value or null; cas → whether it swapped; delete → whether the key
 * existed (undefined: not checked); put → nothing (undefined).
 */
export type OpOutput = string | null | boolean | undefined;

export interface Operation {
  /** Unique within the history (the recorder numbers them). */
  id: number;
  /** Who issued it; only for the explanation. */
  client: number | string;
  input: OpInput;
  /** When it was called, in ms of any one clock shared by the whole history. */
  call: number;
  /** When it returned; undefined when its outcome is unknown. */
  ret?: number;
  /** Its result; meaningful only when ret is set. */
  output?: OpOutput;
}

export interface CheckOptions {
  /**
   * Bound on the search per key (events visited). When a key's search reaches it, the verdict is
   * 'unknown' for that key: never a silent pass.
   */
  maxStepsPerKey?: number;
  /** Bound on the extra search spent shrinking each violation into a small explanation. */
  maxExplainSteps?: number;
}

export interface KeyViolation {
  key: string;
  /** A small sub-history of this key that is itself not linearizable, ordered by call time. */
  ops: Operation[];
  /** How many ops of this key the search could linearize at best, out of how many. */
  longestPrefix: number;
  keyOps: number;
  /** The op the search could not place after its longest partial linearization, and the state then. */
  stuck?: { op: Operation; state: string | null };
  /** Printable explanation. */
  text: string;
}

export interface CheckResult {
  /** 'unknown': no violation found, but some key's search hit its step bound. */
  verdict: 'linearizable' | 'violation' | 'unknown';
  ok: boolean;
  violations: KeyViolation[];
  /** Keys whose search exceeded maxStepsPerKey. */
  undecided: string[];
  keys: number;
  ops: number;
  steps: number;
  /** A printable summary, with every violation's explanation. */
  describe(): string;
}

const DEFAULT_MAX_STEPS_PER_KEY = 2_000_000;
const DEFAULT_MAX_EXPLAIN_STEPS = 2_000_000;

/** Checks a whole history; keys are checked independently. Throws on a malformed history. */
export function checkLinearizability(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const maxSteps = opts.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY;
  const maxExplainSteps = opts.maxExplainSteps ?? DEFAULT_MAX_EXPLAIN_STEPS;
  const byKey = new Map<string, Operation[]>();
  const ids = new Set<number>();
  for (const op of history) {
    validate(op);
    if (ids.has(op.id)) throw new Error(`history: duplicate op id ${op.id}`);
    ids.add(op.id);
    let list = byKey.get(op.input.key);
    if (!list) byKey.set(op.input.key, (list = []));
    list.push(op);
  }
  const violations: KeyViolation[] = [];
  const undecided: string[] = [];
  let steps = 0;
  // Sorted, so that results (and their order) do not depend on the order ops were recorded in.
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const r = searchKey(ops, maxSteps);
    steps += r.steps;
    if (r.verdict === 'unknown') undecided.push(key);
    else if (r.verdict === 'violation') violations.push(explain(key, ops, r, maxExplainSteps));
  }
  const verdict = violations.length ? 'violation' : undecided.length ? 'unknown' : 'linearizable';
  const result: CheckResult = {
    verdict,
    ok: verdict === 'linearizable',
    violations,
    undecided,
    keys: byKey.size,
    ops: history.length,
    steps,
    describe: () => describeResult(result),
  };
  return result;
}

/** Throws an Error whose message explains the violation (or the undecided keys) unless linearizable. */
export function assertLinearizable(history: readonly Operation[], opts?: CheckOptions): CheckResult {
  const r = checkLinearizability(history, opts);
  if (!r.ok) throw new Error(r.describe());
  return r;
}

// ---------------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------------

/** Handle of a recorded call, to complete with ret() or unknown(). */
export interface PendingOp {
  readonly id: number;
}

/**
 * Records a history while clients run: `const op = h.call(client, input)` before sending the request,
 * then `h.ret(op, output)` when its answer came, or `h.unknown(op)` when it failed in a way that leaves
 * its effect unknown. Ops never completed count as unknown.
 */
export class HistoryRecorder {
  private readonly ops: Operation[] = [];
  private readonly done = new Set<number>();
  private readonly now: () => number;

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? (() => performance.now());
  }

  call(client: number | string, input: OpInput): PendingOp {
    const op: Operation = { id: this.ops.length, client, input: { ...input }, call: this.now() };
    validate(op);
    this.ops.push(op);
    return { id: op.id };
  }

  ret(handle: PendingOp, output: OpOutput): void {
    const op = this.open(handle);
    op.ret = this.now();
    op.output = output;
    try {
      validate(op);
    } catch (err) {
      delete op.ret;
      delete op.output;
      throw err;
    }
    this.done.add(op.id);
  }

  unknown(handle: PendingOp): void {
    this.open(handle);
    this.done.add(handle.id);
  }

  /** A copy of the history so far. */
  history(): Operation[] {
    return this.ops.map((op) => ({ ...op }));
  }

  get size(): number {
    return this.ops.length;
  }

  check(opts?: CheckOptions): CheckResult {
    return checkLinearizability(this.ops, opts);
  }

  private open(handle: PendingOp): Operation {
    const op = this.ops[handle.id];
    if (!op || op.id !== handle.id) throw new Error(`HistoryRecorder: no op ${handle.id}`);
    if (this.done.has(op.id)) throw new Error(`HistoryRecorder: op ${op.id} already completed`);
    return op;
  }
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

function validate(op: Operation): void {
  const where = `history: op ${op.id}`;
  if (!Number.isInteger(op.id)) throw new Error(`${where}: id must be an integer`);
  if (!Number.isFinite(op.call)) throw new Error(`${where}: call time must be a finite number`);
  if (op.ret !== undefined && !(op.ret >= op.call && Number.isFinite(op.ret))) {
    throw new Error(`${where}: return time ${op.ret} must be finite and not before its call time ${op.call}`);
  }
  const input = op.input as Partial<OpInput> & { kind?: unknown };
  if (typeof input?.key !== 'string') throw new Error(`${where}: input.key must be a string`);
  const known = op.ret !== undefined;
  const out = op.output;
  switch (input.kind) {
    case 'get':
      if (known && out !== null && typeof out !== 'string') throw new Error(`${where}: a get returns a string or null`);
      break;
    case 'put':
      if (typeof input.value !== 'string') throw new Error(`${where}: put needs a string value`);
      if (known && out !== undefined) throw new Error(`${where}: a put returns nothing (undefined)`);
      break;
    case 'cas': {
      const exp = (input as { expected?: unknown }).expected;
      if (typeof input.value !== 'string') throw new Error(`${where}: cas needs a string value`);
      if (exp !== null && typeof exp !== 'string') throw new Error(`${where}: cas needs expected: string or null`);
      if (known && typeof out !== 'boolean') throw new Error(`${where}: a cas returns a boolean`);
      break;
    }
    case 'delete':
      if (known && out !== undefined && typeof out !== 'boolean') {
        throw new Error(`${where}: a delete returns a boolean (key existed) or undefined`);
      }
      break;
    default:
      throw new Error(`${where}: unknown op kind ${JSON.stringify(input.kind)}`);
  }
}

type State = string | null;

// The search runs on small integers: state 0 is "no key", 1 is "a value nobody observed", and each value
// that some op observes (a get's output, a cas' expected value) has its own number. Values nobody
// observes are indistinguishable to every op, so merging them loses nothing and shrinks the memo.
const ABSENT = 0;
const UNOBSERVED = 1;
const REJECT = -1;

/** An op compiled against one key's value numbering. */
interface Step {
  kind: OpInput['kind'];
  known: boolean;
  /** get: the state it saw; cas: the state it compares with. */
  expect: number;
  /** put / cas: the state it writes. */
  write: number;
  /** cas: whether it swapped; delete: whether the key existed (undefined: not checked). */
  flag: boolean | undefined;
}

function compile(ops: readonly Operation[]): { steps: Step[]; names: State[] } {
  const ids = new Map<string, number>();
  const names: State[] = [null, null];
  const observe = (v: string) => {
    if (!ids.has(v)) {
      ids.set(v, names.length);
      names.push(v);
    }
  };
  for (const op of ops) {
    if (op.input.kind === 'get' && typeof op.output === 'string') observe(op.output);
    if (op.input.kind === 'cas' && op.input.expected !== null) observe(op.input.expected);
  }
  const id = (v: string | null) => (v === null ? ABSENT : ids.get(v) ?? UNOBSERVED);
  const steps = ops.map((op): Step => {
    const i = op.input;
    const known = op.ret !== undefined;
    switch (i.kind) {
      case 'get':
        return { kind: 'get', known, expect: known ? id(op.output as State) : 0, write: 0, flag: undefined };
      case 'put':
        return { kind: 'put', known, expect: 0, write: id(i.value), flag: undefined };
      case 'cas':
        return { kind: 'cas', known, expect: id(i.expected), write: id(i.value), flag: op.output as boolean };
      case 'delete':
        return { kind: 'delete', known, expect: 0, write: ABSENT, flag: known ? (op.output as boolean | undefined) : undefined };
    }
  });
  return { steps, names };
}

/** One step of the register: the state after the op, or REJECT when its recorded output is impossible. */
function apply(state: number, s: Step): number {
  switch (s.kind) {
    case 'get':
      return !s.known || state === s.expect ? state : REJECT;
    case 'put':
      return s.write;
    case 'cas': {
      const matches = state === s.expect;
      if (!s.known) return matches ? s.write : state;
      if (s.flag) return matches ? s.write : REJECT;
      return matches ? REJECT : state;
    }
    case 'delete':
      if (s.flag !== undefined && s.flag !== (state !== ABSENT)) return REJECT;
      return ABSENT;
  }
}

// ---------------------------------------------------------------------------------------------
// Search (one key)
// ---------------------------------------------------------------------------------------------

interface SearchResult {
  verdict: 'linearizable' | 'violation' | 'unknown';
  steps: number;
  /** At the deepest point: how many ops were linearized, and the op whose return blocked the search. */
  deepest: number;
  stuck?: { op: Operation; state: State | typeof UNOBSERVED_VALUE };
}

/** How the explanation shows the merged state of values nobody observed. */
export const UNOBSERVED_VALUE = '<a value no op observed>';

/**
 * Porcupine's search over a doubly linked list of events (dancing links: lifting an op unlinks its call
 * and return events, backtracking relinks them in reverse order).
 *
 * The memo is keyed by (linearized ops with a known outcome, state). Ops with an unknown outcome are kept
 * apart: a configuration that has used a superset of the unknown ops of one already tried, with the same
 * known ops and state, can do nothing the earlier one could not (the earlier one may still leave the
 * extra ones out), so it is pruned. Without this, k pending unknown writes multiply the work by 2^k.
 */
function searchKey(allOps: readonly Operation[], maxSteps: number): SearchResult {
  // A get with an unknown outcome neither changed nor observed anything.
  const ops = allOps.filter((op) => !(op.input.kind === 'get' && op.ret === undefined));
  const n = ops.length;
  if (n === 0) return { verdict: 'linearizable', steps: 0, deepest: 0 };
  const { steps: model, names } = compile(ops);

  // Events: call of op i at time call, return at ret (unknown: after everything). At equal times calls
  // come first, so ops that merely touch count as concurrent (no false alarms from clock resolution).
  const events: { op: number; isCall: boolean; time: number }[] = [];
  for (let i = 0; i < n; i++) {
    events.push({ op: i, isCall: true, time: ops[i].call });
    events.push({ op: i, isCall: false, time: ops[i].ret ?? Infinity });
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));

  const size = events.length;
  const HEAD = size;
  const next = new Int32Array(size + 1);
  const prev = new Int32Array(size + 1);
  const opOf = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const retNode = new Int32Array(n); // op -> its return event
  for (let e = 0; e < size; e++) {
    opOf[e] = events[e].op;
    isCall[e] = events[e].isCall ? 1 : 0;
    if (!events[e].isCall) retNode[events[e].op] = e;
    next[e] = e + 1 < size ? e + 1 : -1;
    prev[e] = e === 0 ? HEAD : e - 1;
  }
  next[HEAD] = 0;
  prev[HEAD] = -1;

  const unlink = (e: number) => {
    next[prev[e]] = next[e];
    if (next[e] !== -1) prev[next[e]] = prev[e];
  };
  const relink = (e: number) => {
    next[prev[e]] = e;
    if (next[e] !== -1) prev[next[e]] = e;
  };

  // Unknown ops grouped by what they do (same kind, compared and written states), in call order.
  const lifted = new Uint8Array(n);
  const sameKind = new Map<string, number[]>();
  const kindOf = new Array<number[] | undefined>(n);
  for (const e of events) {
    const s = model[e.op];
    if (!e.isCall || s.known) continue;
    const sig = `${s.kind}|${s.expect}|${s.write}`;
    let group = sameKind.get(sig);
    if (!group) sameKind.set(sig, (group = []));
    group.push(e.op);
    kindOf[e.op] = group;
  }
  const firstOfItsKind = (i: number): boolean => {
    for (const j of kindOf[i]!) if (!lifted[j]) return j === i;
    return false;
  };

  // Known ops and unknown ops are numbered apart, each into its own bitset.
  const bit = new Int32Array(n);
  let knownCount = 0;
  let unknownCount = 0;
  for (let i = 0; i < n; i++) bit[i] = model[i].known ? knownCount++ : unknownCount++;
  const knownWords = new Uint32Array((knownCount + 31) >>> 5);
  const unknownWords = new Uint32Array((unknownCount + 31) >>> 5);
  // The memo's key is a Zobrist hash of the known set (two 32-bit halves, updated per op as it is
  // linearized or backed out) and the state; entries under a key hold the exact known set, compared on a
  // hit, so a hash collision can never prune a configuration wrongly.
  const zobrist = new Uint32Array(2 * n);
  let seed = 0x9e3779b9;
  for (let i = 0; i < zobrist.length; i++) {
    // xorshift32: deterministic, so a verdict and its step count never vary between runs.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    zobrist[i] = seed >>> 0;
  }
  let hashLo = 0;
  let hashHi = 0;
  const toggle = (i: number) => {
    const w = model[i].known ? knownWords : unknownWords;
    w[bit[i] >>> 5] ^= 1 << (bit[i] & 31);
    if (model[i].known) {
      hashLo ^= zobrist[2 * i];
      hashHi ^= zobrist[2 * i + 1];
    }
  };
  const memo = new Map<string, { known: Uint32Array; usedUnknown: Uint32Array[] }[]>();
  /** Records the configuration; false when it (or one that dominates it) was tried before. */
  const firstVisit = (state: number): boolean => {
    const key = `${hashLo},${hashHi},${state}`;
    let bucket = memo.get(key);
    if (!bucket) memo.set(key, (bucket = []));
    let entry = bucket.find((e) => sameWords(e.known, knownWords));
    if (!entry) {
      bucket.push({ known: knownWords.slice(), usedUnknown: [unknownWords.slice()] });
      return true;
    }
    for (const used of entry.usedUnknown) {
      let subset = true;
      for (let w = 0; w < used.length && subset; w++) subset = (used[w] & ~unknownWords[w]) === 0;
      if (subset) return false;
    }
    entry.usedUnknown.push(unknownWords.slice());
    return true;
  };

  // Ops with an unknown outcome need not be placed: once only they remain, the history is linearizable.
  let knownLeft = knownCount;
  const stack: { node: number; state: number }[] = [];
  let state = ABSENT;
  let node = next[HEAD];
  let steps = 0;
  let deepest = -1;
  let stuck: { node: number; state: number } | undefined;

  while (knownLeft > 0) {
    if (++steps > maxSteps) return { verdict: 'unknown', steps, deepest };
    if (isCall[node]) {
      const i = opOf[node];
      const after = apply(state, model[i]);
      // An unknown op that would change nothing now is better left for later (or never); and of
      // unknown ops that do the same thing, only the earliest still pending is tried: all have been
      // called and none ever returns, so the others would only repeat its search.
      const pointless = !model[i].known && (after === state || !firstOfItsKind(i));
      if (after !== REJECT && !pointless) {
        toggle(i);
        if (firstVisit(after)) {
          stack.push({ node, state });
          state = after;
          if (model[i].known) knownLeft--;
          lifted[i] = 1;
          unlink(node);
          unlink(retNode[i]);
          node = next[HEAD];
          continue;
        }
        toggle(i);
      }
      node = next[node];
      continue;
    }
    // The return event of an op not yet linearized (while known ops remain, the cursor always meets
    // one of their return events before the list ends): back up.
    if (stack.length > deepest) {
      deepest = stack.length;
      stuck = { node, state };
    }
    const top = stack.pop();
    if (!top) break;
    const i = opOf[top.node];
    relink(retNode[i]);
    relink(top.node);
    lifted[i] = 0;
    toggle(i);
    if (model[i].known) knownLeft++;
    state = top.state;
    node = next[top.node];
  }
  if (knownLeft === 0) return { verdict: 'linearizable', steps, deepest: n };
  const stuckState = stuck ? (stuck.state === UNOBSERVED ? UNOBSERVED_VALUE : names[stuck.state]) : null;
  return {
    verdict: 'violation',
    steps,
    deepest,
    stuck: stuck && { op: ops[opOf[stuck.node]], state: stuckState },
  };
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let w = 0; w < a.length; w++) if (a[w] !== b[w]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Explanation
// ---------------------------------------------------------------------------------------------

/**
 * Shrinks a violating key's history to a small sub-history that is still not linearizable, for the
 * reader (the verdict is the full search's): first the prefix up to the stuck op's return (ops still
 * running then lose their results, as in a prefix of the history), then ever smaller runs of consecutive
 * ops (ddmin's chunks, down to single ops), as far as the step budget allows. A removal is kept only if
 * every remaining observation keeps a possible cause, so the explanation does not invent an anomaly by
 * dropping the write a read saw: see `observationsKeepCauses`.
 */
function explain(key: string, ops: Operation[], r: SearchResult, budget: number): KeyViolation {
  let left = budget;
  const stillViolates = (sub: Operation[]): boolean => {
    if (left <= 0 || !observationsKeepCauses(sub, ops)) return false;
    const s = searchKey(sub, left);
    left -= s.steps + 2 * sub.length; // the event list is built anew each time
    return s.verdict === 'violation';
  };
  let sub = [...ops].sort((a, b) => a.call - b.call || a.id - b.id);
  if (r.stuck?.op.ret !== undefined) {
    const horizon = r.stuck.op.ret;
    const prefix = sub
      .filter((op) => op.call <= horizon)
      .map((op): Operation => (op.ret !== undefined && op.ret > horizon ? { id: op.id, client: op.client, input: op.input, call: op.call } : op));
    if (prefix.length < sub.length && stillViolates(prefix)) sub = prefix;
  }
  // Latest chunks first: the anomaly is usually near the end of what remains.
  for (let chunk = Math.ceil(sub.length / 2); chunk >= 1 && left > 0; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
    for (let end = sub.length; end > 0 && left > 0; end -= chunk) {
      const start = Math.max(0, end - chunk);
      const without = sub.slice(0, start).concat(sub.slice(end));
      if (without.length && stillViolates(without)) sub = without;
    }
  }
  const v: KeyViolation = {
    key,
    ops: sub,
    longestPrefix: Math.max(r.deepest, 0),
    keyOps: ops.length,
    stuck: r.stuck,
    text: '',
  };
  v.text = describeViolation(v);
  return v;
}

/**
 * Every observation in `sub` that some op of the full history could explain keeps such an op in `sub`
 * (called before the observation returned): a value seen (get, a cas that swapped) keeps a write of it;
 * "the key existed" (delete → true, cas(null) → false) keeps some write; "the key was absent"
 * (get → null, cas(null) → true, delete → false) keeps a delete, when the history has one.
 */
function observationsKeepCauses(sub: Operation[], all: Operation[]): boolean {
  const writes = (v: string) => (op: Operation) =>
    (op.input.kind === 'put' || (op.input.kind === 'cas' && op.output !== false)) && op.input.value === v;
  const anyWrite = (op: Operation) => op.input.kind === 'put' || (op.input.kind === 'cas' && op.output !== false);
  const deletes = (op: Operation) => op.input.kind === 'delete';
  for (const op of sub) {
    if (op.ret === undefined) continue;
    const i = op.input;
    let cause: ((o: Operation) => boolean) | undefined;
    if (i.kind === 'get') cause = op.output === null ? deletes : writes(op.output as string);
    else if (i.kind === 'cas' && op.output === true) cause = i.expected === null ? deletes : writes(i.expected);
    else if (i.kind === 'cas' && i.expected === null) cause = anyWrite; // failed: the key existed
    else if (i.kind === 'delete' && op.output !== undefined) cause = op.output ? anyWrite : deletes;
    if (!cause) continue;
    const before = (o: Operation) => o !== op && o.call <= op.ret! && cause!(o);
    if (all.some(before) && !sub.some(before)) return false;
  }
  return true;
}

function show(v: string | null): string {
  return v === null ? 'null' : v === UNOBSERVED_VALUE ? v : JSON.stringify(v);
}

/** One line per op: `client  op → result  [call … return]  #id`. */
export function formatOp(op: Operation): string {
  const times = `[${op.call.toFixed(3)} … ${op.ret === undefined ? '?' : op.ret.toFixed(3)} ms]`;
  return `client ${String(op.client).padEnd(4)} ${formatCall(op)}`.padEnd(60) + ` ${times}  #${op.id}`;
}

/** `op → result`. */
function formatCall(op: Operation): string {
  const i = op.input;
  let call: string;
  switch (i.kind) {
    case 'get':
      call = `get(${show(i.key)})`;
      break;
    case 'put':
      call = `put(${show(i.key)}, ${show(i.value)})`;
      break;
    case 'cas':
      call = `cas(${show(i.key)}, ${show(i.expected)} → ${show(i.value)})`;
      break;
    case 'delete':
      call = `delete(${show(i.key)})`;
      break;
  }
  let result: string;
  if (op.ret === undefined) result = '? (outcome unknown)';
  else if (i.kind === 'get') result = show(op.output as string | null);
  else if (i.kind === 'put') result = 'ok';
  else if (op.output === undefined) result = 'ok';
  else result = String(op.output);
  return `${call} → ${result}`;
}

function describeViolation(v: KeyViolation): string {
  const lines = [
    `key ${show(v.key)}: not linearizable. ${v.ops.length} of its ${v.keyOps} ops already are not, by call time:`,
    ...v.ops.map((op) => '  ' + formatOp(op)),
    `  (the full search linearized at most ${v.longestPrefix} of ${v.keyOps} ops` +
      (v.stuck ? `; then #${v.stuck.op.id} ${formatCall(v.stuck.op)} could not be placed, the register holding ${show(v.stuck.state)})` : ')'),
  ];
  return lines.join('\n');
}

function describeResult(r: CheckResult): string {
  if (r.verdict === 'linearizable') return `linearizable: ${r.ops} ops over ${r.keys} keys (${r.steps} search steps)`;
  const parts = [`${r.verdict}: ${r.ops} ops over ${r.keys} keys`];
  for (const v of r.violations) parts.push(v.text);
  if (r.undecided.length) {
    parts.push(`search step bound reached, no verdict for keys: ${r.undecided.map(show).join(', ')}`);
  }
  return parts.join('\n');
}
