// The scenario table of the etcd comparison test (compat.test.ts).
//
// Every scenario runs on a fresh, empty server (revision 1), once against real etcd 3.4 (the
// reference) and once against each target; the normalised output of every step must be equal.
// A step is either an etcdctl invocation (arguments after `--endpoints`, optional stdin) or a raw
// gRPC KV call for request fields etcdctl 3.4 cannot send (count_only, min/max revisions,
// Compare.range_end, LEASE compares, nested txns).
//
// Placeholders: `{L1}` in etcdctl arguments/stdin becomes the hex id of the lease captured as L1
// (`capture: 'L1'` on a `lease grant -w json` step); in a gRPC request it becomes the decimal id.
//
// Known differences: when Plinth differs from etcd on purpose (or cannot match), put
// `knownDifference: 'reason'` (or `{ reason, targets: ['plinth:memory'] }`) on the step, or on the
// scenario when the difference runs through all of it. A marked step that differs is reported,
// not failed; a marked step that no longer differs fails, so the list cannot go stale.
// Marks apply to Plinth targets only; etcd-vs-etcd runs (harness validation) must match exactly.
import type { KvMethod } from './grpc';

export type KnownDifference = string | { reason: string; targets?: string[] };

interface StepBase {
  note?: string;
  knownDifference?: KnownDifference;
}

export interface CtlStep extends StepBase {
  args: string[];
  stdin?: string;
  /** Name under which to remember the lease id printed by this `lease grant -w json` step. */
  capture?: string;
}

export interface GrpcStep extends StepBase {
  grpc: KvMethod;
  /** Keys/values as text (`key`, `range_end`, `value` fields are sent as UTF-8 bytes) or Buffers. */
  request: Record<string, unknown>;
}

export type Step = CtlStep | GrpcStep;

export interface Scenario {
  name: string;
  description: string;
  steps: Step[];
  knownDifference?: KnownDifference;
}

export const isGrpc = (s: Step): s is GrpcStep => 'grpc' in s;

// ---------------------------------------------------------------------------------------------
// Builders

/** etcdctl step with `-w json` appended. */
const json = (...args: string[]): CtlStep => ({ args: [...args, '-w', 'json'] });
/** etcdctl step with the default (simple) output, for plain text and error messages. */
const plain = (...args: string[]): CtlStep => ({ args });
const note = <T extends Step>(step: T, text: string): T => ({ ...step, note: text });
const stdin = <T extends CtlStep>(step: T, input: string): T => ({ ...step, stdin: input });

interface TxnSpec {
  if?: string[];
  then?: string[];
  else?: string[];
}
/**
 * `etcdctl txn` reading the interactive format from stdin: compares, blank line, success ops,
 * blank line, failure ops, blank line. Without -i etcdctl prints no prompts.
 */
function txnInput(t: TxnSpec): string {
  const block = (lines: string[] = []) => lines.map((l) => `${l}\n`).join('') + '\n';
  return block(t.if) + block(t.then) + block(t.else);
}
function txn(t: TxnSpec, mode: 'json' | 'plain' | 'interactive' = 'json'): CtlStep {
  const args = mode === 'json' ? ['txn', '-w', 'json'] : mode === 'interactive' ? ['txn', '-i', '-w', 'json'] : ['txn'];
  return { args, stdin: txnInput(t) };
}

/** Raw bytes for gRPC keys/values (strings are sent as UTF-8). */
const bytes = (...b: number[]): Buffer => Buffer.from(b);

const rpc = (method: KvMethod, request: Record<string, unknown>, text?: string): GrpcStep =>
  text ? { grpc: method, request, note: text } : { grpc: method, request };

/** json put steps for a list of [key, value] pairs, one revision each. */
const puts = (pairs: Array<[string, string]>): CtlStep[] => pairs.map(([k, v]) => json('put', k, v));

// Data for the sort / min-max scenarios. Revisions on a fresh server (rev 1):
//   key  value  version  create  mod
//   s/a  v4     3        3       10
//   s/b  v2     1        5       5
//   s/c  v3     2        2       11
//   s/d  v1     4        4       8
// so every sort target gives a different, tie-free order.
const SORT_DATA: Array<[string, string]> = [
  ['s/c', 'v3'], // 2
  ['s/a', 'v4'], // 3
  ['s/d', 'v1'], // 4
  ['s/b', 'v2'], // 5
  ['s/d', 'v1'], // 6
  ['s/d', 'v1'], // 7
  ['s/d', 'v1'], // 8
  ['s/a', 'v4'], // 9
  ['s/a', 'v4'], // 10
  ['s/c', 'v3'], // 11
];

const SORT_TARGETS = ['KEY', 'VALUE', 'VERSION', 'CREATE', 'MODIFY'];
const ORDERS = ['ASCEND', 'DESCEND'];

// Keys for the range scenarios, in byte order.
const RANGE_DATA: Array<[string, string]> = [
  ['a', '1'],
  ['ab', '2'],
  ['abc', '3'],
  ['b', '4'],
  ['c', '5'],
  ['foo', '6'],
  ['foo/bar', '7'],
  ['foo/baz', '8'],
  ['fop', '9'],
  ['zoo', '10'],
];

// ---------------------------------------------------------------------------------------------
// Scenarios

export const scenarios: Scenario[] = [
  {
    name: 'empty-server',
    description: 'a fresh server is at revision 1 and holds no keys',
    steps: [
      json('get', '', '--prefix'),
      json('get', 'anything'),
      plain('get', '', '--prefix'),
      json('get', '', '--from-key', '--keys-only'),
      json('del', '', '--prefix'),
      json('get', 'anything', '--rev=1'),
      json('get', 'anything', '--consistency=s'),
    ],
  },

  {
    name: 'put-basic',
    description: 'put: plain, --prev-kv, empty/binary-ish values, value from stdin, "--" keys',
    steps: [
      json('put', 'foo', 'bar'),
      json('put', 'foo', 'baz', '--prev-kv'),
      plain('put', 'foo', 'qux', '--prev-kv'),
      plain('put', 'foo', 'quux'),
      json('get', 'foo'),
      plain('get', 'foo'),
      note(json('put', 'foo', 'quux', '--prev-kv'), 'same value again: version and mod_revision still move'),
      json('get', 'foo'),
      note(json('put', 'empty', ''), 'empty value: "value" is omitted from -w json'),
      json('get', 'empty'),
      plain('get', 'empty'),
      json('put', 'empty', 'now-set', '--prev-kv'),
      note(stdin(json('put', 'from-stdin'), 'line one\nline two\n'), 'value read from stdin'),
      json('get', 'from-stdin'),
      plain('get', 'from-stdin'),
      { args: ['put', '-w', 'json', '--', '-dash', '-value'], note: 'key and value starting with "-"' },
      plain('get', '--', '-dash'),
      json('put', 'ключ/键', 'значение ✓'),
      json('get', 'ключ/键'),
      json('put', 'with space', 'v a l u e'),
      plain('get', 'with space'),
      note(stdin(json('put', 'big'), 'x'.repeat(1_500_000)), '1.5 MB value: just under --max-request-bytes (1.5 MiB)'),
      json('get', 'big', '--keys-only'),
      json('del', 'big'),
      json('get', '', '--prefix', '--keys-only'),
    ],
  },

  {
    name: 'put-errors',
    description: 'put error cases: empty key, unknown lease, --ignore-value/--ignore-lease on a missing key, too large',
    steps: [
      json('put', '', 'x'),
      plain('put', '', 'x'),
      json('put', 'k', 'v', '--lease=1234abcd'),
      plain('put', 'k', 'v', '--lease=1234abcd'),
      json('put', 'missing', '--ignore-value'),
      plain('put', 'missing', '--ignore-value'),
      json('put', 'missing', 'v', '--ignore-lease'),
      note(json('put', 'k', 'v', '--ignore-lease', '--lease=12'), 'server rejects lease together with ignore_lease'),
      note(json('put', 'k', 'v', '--ignore-value'), 'etcdctl-side usage error'),
      note(json('put', 'k', 'v', '--lease=zz'), 'etcdctl-side: bad hex lease id'),
      note(plain('put'), 'etcdctl-side: missing arguments'),
      note(stdin(json('put', 'toolarge'), 'x'.repeat(1_600_000)), 'over --max-request-bytes: etcdserver: request is too large'),
      note(json('get', '', '--prefix'), 'nothing was written: still revision 1'),
      json('put', 'k', 'v'),
      json('put', 'k', '--ignore-value', '--lease=1234abcd'),
      json('put', 'k', 'v2', '--lease=0'),
      json('get', 'k'),
    ],
  },

  {
    name: 'put-lease',
    description: 'put --lease / --ignore-lease / --ignore-value with a real lease; revoking deletes its keys',
    steps: [
      { ...json('lease', 'grant', '60'), capture: 'L1' },
      json('put', 'k', 'v1', '--lease={L1}'),
      json('get', 'k'),
      json('put', 'k', 'v2', '--ignore-lease', '--prev-kv'),
      note(json('get', 'k'), 'lease kept'),
      json('put', 'k', '--ignore-value', '--ignore-lease', '--prev-kv'),
      note(json('get', 'k'), 'value and lease kept'),
      json('put', 'k', '--ignore-value', '--prev-kv'),
      note(json('get', 'k'), 'value kept, lease detached (no --ignore-lease)'),
      json('put', 'k', 'v3', '--lease={L1}'),
      json('put', 'k', 'v3b', '--prev-kv'),
      note(json('get', 'k'), 'a put without --lease detaches the lease'),
      json('put', 'k', 'v4', '--lease={L1}'),
      json('put', 'k2', 'w', '--lease={L1}'),
      json('put', 'k3', 'no-lease'),
      json('get', 'k', '--prefix'),
      plain('lease', 'revoke', '{L1}'),
      note(json('get', 'k', '--prefix'), 'k and k2 are gone, in one revision'),
      json('put', 'k', 'v5', '--lease={L1}'),
      json('put', 'k', 'v5', '--ignore-lease'),
      json('put', 'k3', '--ignore-value', '--prev-kv'),
    ],
  },

  {
    name: 'get-ranges',
    description: 'get: single key, --prefix, --from-key, [key, end), --limit, --keys-only, --print-value-only, --consistency=s',
    steps: [
      ...puts(RANGE_DATA),
      json('get', 'a'),
      json('get', 'ab', '--prefix'),
      json('get', 'foo', '--prefix'),
      json('get', 'foo/', '--prefix'),
      json('get', '', '--prefix'),
      json('get', 'b', '--from-key'),
      json('get', '', '--from-key'),
      json('get', 'zzz', '--from-key'),
      json('get', 'a', 'c'),
      json('get', 'foo', 'fop'),
      note(json('get', 'a', 'a'), 'range end equal to key: empty'),
      note(json('get', 'c', 'a'), 'range end before key: empty'),
      json('get', '', '--prefix', '--limit=3'),
      json('get', '', '--prefix', '--limit=0'),
      json('get', '', '--prefix', '--limit=10'),
      json('get', '', '--prefix', '--limit=100'),
      json('get', '', '--prefix', '--limit=-1'),
      json('get', 'foo', '--prefix', '--limit=1'),
      json('get', 'a', 'c', '--limit=2'),
      json('get', 'b', '--from-key', '--limit=2'),
      json('get', '', '--prefix', '--keys-only'),
      plain('get', '', '--prefix', '--keys-only'),
      plain('get', 'foo', '--prefix'),
      plain('get', 'foo', '--prefix', '--print-value-only'),
      plain('get', 'foo', '--prefix', '--keys-only', '--limit=2'),
      json('get', '', '--prefix', '--consistency=s'),
      json('get', 'foo', '--consistency=s', '--keys-only'),
      json('get', 'nothing'),
      plain('get', 'nothing'),
      json('get', 'z', '--prefix'),
      json('get', 'zoo/', '--prefix'),
      note(json('get', 'a', 'b', 'c'), 'etcdctl ignores a third argument'),
      note(json('get', 'a', '--prefix', '--from-key'), 'etcdctl-side usage error'),
      note(json('get', 'a', 'b', '--prefix'), 'etcdctl-side usage error'),
      note(plain('get'), 'etcdctl-side usage error'),
      note(json('get', 'a', '--print-value-only'), 'etcdctl-side: only for simple output'),
      note(json('get', 'a', '--consistency=x'), 'etcdctl-side usage error'),
    ],
  },

  {
    name: 'get-sort',
    description: 'get --sort-by=KEY|VALUE|VERSION|CREATE|MODIFY x --order=ASCEND|DESCEND, with --limit/--keys-only',
    steps: [
      ...puts(SORT_DATA),
      ...SORT_TARGETS.flatMap((t) => ORDERS.map((o) => json('get', 's/', '--prefix', `--sort-by=${t}`, `--order=${o}`))),
      ...SORT_TARGETS.map((t) => json('get', 's/', '--prefix', `--sort-by=${t}`)),
      json('get', 's/', '--prefix', '--order=DESCEND'),
      json('get', 's/', '--prefix', '--order=ASCEND'),
      json('get', 's/', '--prefix', '--sort-by=MODIFY', '--order=DESCEND', '--limit=2'),
      json('get', 's/', '--prefix', '--sort-by=VERSION', '--order=ASCEND', '--limit=1'),
      json('get', 's/', '--prefix', '--order=DESCEND', '--limit=3'),
      note(json('get', 's/', '--prefix', '--sort-by=VALUE', '--keys-only'), 'sorted by value, values then stripped'),
      json('get', 's/', '--prefix', '--sort-by=CREATE', '--order=DESCEND', '--keys-only', '--limit=2'),
      plain('get', 's/', '--prefix', '--sort-by=CREATE', '--order=DESCEND', '--print-value-only'),
      json('get', '', '--from-key', '--sort-by=MODIFY', '--order=DESCEND'),
      json('get', 's/a', 's/d', '--sort-by=VALUE', '--order=DESCEND'),
      note(json('get', 's/', '--prefix', '--sort-by=value', '--order=descend'), 'etcdctl upper-cases target and order'),
      json('put', 't/x', 'same'),
      json('put', 't/y', 'same'),
      json('put', 't/z', 'same'),
      note(json('get', 't/', '--prefix', '--sort-by=VALUE', '--order=DESCEND'), 'ties keep key order (small sets)'),
      json('get', 't/', '--prefix', '--sort-by=VALUE', '--order=ASCEND'),
      json('get', 't/', '--prefix', '--sort-by=VERSION', '--order=DESCEND'),
      json('get', 't/', '--prefix', '--sort-by=VALUE', '--order=DESCEND', '--limit=1'),
      note(plain('get', 's/', '--prefix', '--sort-by=FOO'), 'etcdctl-side usage error'),
      note(plain('get', 's/', '--prefix', '--order=UP'), 'etcdctl-side usage error'),
    ],
  },

  {
    name: 'get-history',
    description: 'get --rev: historical reads (before creation, after delete, re-created key), future revision',
    steps: [
      json('put', 'h', 'v1'), // 2
      json('put', 'h', 'v2'), // 3
      json('put', 'g', 'x'), // 4
      json('del', 'h'), // 5
      json('put', 'h', 'v3'), // 6
      json('put', 'g', 'y'), // 7
      note(json('get', 'h', '--rev=1'), 'header.revision is the current revision, not --rev'),
      ...[2, 3, 4, 5, 6, 7].map((r) => json('get', 'h', `--rev=${r}`)),
      json('get', '', '--prefix', '--rev=4'),
      json('get', '', '--prefix', '--rev=5', '--keys-only'),
      json('get', '', '--prefix', '--rev=3', '--sort-by=MODIFY', '--order=DESCEND'),
      json('get', '', '--prefix', '--rev=6', '--limit=1'),
      json('get', 'g', '--from-key', '--rev=2'),
      json('get', 'h', '--rev=3', '--consistency=s'),
      note(json('get', 'h', '--rev=0'), 'revision 0 means current'),
      note(json('get', 'h', '--rev=-1'), 'negative revision'),
      note(json('get', 'h', '--rev=8'), 'future revision: error'),
      plain('get', 'h', '--rev=100'),
      plain('get', 'h', '--rev=5'),
      plain('get', 'h', '--rev=6', '--print-value-only'),
    ],
  },

  {
    name: 'range-request-fields',
    description: 'gRPC Range fields etcdctl 3.4 cannot set: count_only, min/max_mod_revision, min/max_create_revision, sort NONE',
    steps: [
      ...puts(SORT_DATA),
      json('put', 'u', 'outside'),
      rpc('Range', { key: 's/', range_end: 's0' }),
      rpc('Range', { key: 's/', range_end: 's0', count_only: true }),
      rpc('Range', { key: 's/', range_end: 's0', count_only: true, keys_only: true }),
      rpc('Range', { key: 's/', range_end: 's0', count_only: true, limit: 1 }),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 8 }),
      rpc('Range', { key: 's/', range_end: 's0', max_mod_revision: 8 }),
      rpc('Range', { key: 's/', range_end: 's0', min_create_revision: 4 }),
      rpc('Range', { key: 's/', range_end: 's0', max_create_revision: 3 }),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 6, max_mod_revision: 10 }),
      rpc('Range', { key: 's/', range_end: 's0', min_create_revision: 3, max_create_revision: 4 }),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 100 }),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 8, count_only: true }, 'count ignores min/max filters: etcd counts before filtering'),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 8, limit: 1 }, 'more is computed after filtering'),
      rpc('Range', { key: 's/', range_end: 's0', max_create_revision: 4, limit: 1 }),
      rpc('Range', { key: 's/', range_end: 's0', min_mod_revision: 5, sort_target: 'VALUE', sort_order: 'DESCEND', limit: 2 }),
      rpc('Range', { key: 's/', range_end: 's0', revision: 6, min_mod_revision: 3 }),
      rpc('Range', { key: 's/', range_end: 's0', revision: 6, count_only: true }),
      rpc('Range', { key: 's/', range_end: 's0', serializable: true, keys_only: true }),
      rpc('Range', { key: 's/', range_end: 's0', sort_target: 'KEY', sort_order: 'DESCEND' }),
      rpc('Range', { key: 's/', range_end: 's0', sort_target: 'VALUE', sort_order: 'NONE' }, 'target without order'),
      rpc('Range', { key: 's/', range_end: 's0', sort_target: 'CREATE', sort_order: 'NONE', limit: 2 }),
      rpc('Range', { key: 's/', range_end: 's0', sort_target: 'MOD', sort_order: 'ASCEND' }),
      rpc('Range', { key: 's/', range_end: 's0', limit: 2 }),
      rpc('Range', { key: 's/', range_end: 's0', limit: 4 }, 'limit equal to count: more=false'),
      rpc('Range', { key: '\0', range_end: '\0' }, 'whole keyspace'),
      rpc('Range', { key: 's/b', range_end: '\0' }, 'from key'),
      rpc('Range', { key: 's/a' }),
      rpc('Range', { key: 's/zz' }),
      rpc('Range', { key: '' }, 'empty key: error'),
      rpc('Range', { key: '', range_end: 's' }, 'empty key with a range end: error'),
      rpc('Range', { key: 's/', range_end: 's0', revision: 100 }, 'future revision'),
      rpc('Range', { key: 's/', range_end: 's0', revision: -3 }, 'negative revision'),
      rpc('Put', { key: 's/e', value: 'v9', prev_kv: true }),
      rpc('Put', { key: 's/e', value: 'v10', prev_kv: true }),
      rpc('Put', { key: 's/e', ignore_value: true, prev_kv: true }),
      rpc('Put', { key: '', value: 'x' }),
      rpc('Put', { key: 's/none', ignore_value: true }),
      rpc('DeleteRange', { key: 's/a', range_end: 's/c', prev_kv: true }),
      rpc('DeleteRange', { key: 's/none' }),
      rpc('DeleteRange', { key: '' }),
      rpc('Range', { key: '\0', range_end: '\0', keys_only: true }),
    ],
  },

  {
    name: 'del',
    description: 'del: single key, --prefix, --from-key, [key, end), --prev-kv, missing key, errors',
    steps: [
      ...puts([
        ['a', '1'],
        ['ab', '2'],
        ['abc', '3'],
        ['b', '4'],
        ['c', '5'],
        ['d', '6'],
        ['e', '7'],
        ['foo', '8'],
        ['foo/1', '9'],
        ['foo/2', '10'],
        ['fop', '11'],
      ]),
      note(json('del', 'nothing'), 'nothing deleted: "deleted" omitted, revision unchanged'),
      plain('del', 'nothing'),
      note(json('del', 'a'), 'exact key only'),
      json('get', '', '--prefix', '--keys-only'),
      json('del', 'ab', '--prev-kv'),
      plain('del', 'abc', '--prev-kv'),
      json('del', 'foo', '--prefix', '--prev-kv'),
      json('del', 'b', 'd', '--prev-kv'),
      json('get', '', '--prefix', '--keys-only'),
      json('del', 'd', '--from-key'),
      json('get', '', '--prefix', '--keys-only'),
      json('del', 'x', '--prefix'),
      json('del', 'x', 'y'),
      json('del', 'y', 'x'),
      json('del', 'zzz', '--from-key'),
      json('put', 'a', '1'),
      json('put', 'b', '2'),
      json('put', 'a', '3'),
      plain('del', '', '--prefix', '--prev-kv'),
      json('get', '', '--prefix'),
      json('put', 'q', '1'),
      json('del', '', '--from-key', '--prev-kv'),
      note(json('get', 'q', '--rev=23'), 'history survives deletion'),
      json('del', ''),
      plain('del', ''),
      note(plain('del', 'a', 'b', '--prefix'), 'etcdctl-side usage error'),
      note(plain('del', 'a', '--prefix', '--from-key'), 'etcdctl-side usage error'),
      note(plain('del'), 'etcdctl-side usage error'),
    ],
  },

  {
    name: 'txn-compares',
    description: 'txn compares on value/version/create/mod with = != < >, missing keys, and both branches',
    steps: [
      json('put', 'a', '1'), // 2
      json('put', 'b', '2'), // 3
      json('put', 'b', '22'), // 4   b: version 2, create 3, mod 4
      json('put', 'c', '3'), // 5
      txn({ if: ['value("a") = "1"'], then: ['put a 10', 'get a'], else: ['get b'] }),
      note(txn({ if: ['value("a") = "1"'], then: ['put a 11'], else: ['get a', 'put fail x'] }), 'failure branch'),
      txn({ if: ['value("a") != "1"'], then: ['get a'], else: ['get b'] }),
      note(txn({ if: ['value("a") > "1"'], then: ['get a'], else: ['get b'] }), 'byte-wise: "10" > "1"'),
      txn({ if: ['value("a") < "2"'], then: ['get a'], else: ['get b'] }),
      txn({ if: ['value("a") < "1"'], then: ['get a'], else: ['get b'] }),
      txn({ if: ['ver("b") = "2"'], then: ['get b'] }),
      txn({ if: ['version("b") > "1"'], then: ['get b'] }),
      txn({ if: ['ver("b") < "2"'], then: ['get b'], else: ['get c'] }),
      txn({ if: ['ver("b") != "2"'], then: ['get b'], else: ['get c'] }),
      txn({ if: ['create("b") = "3"'], then: ['get b'] }),
      txn({ if: ['c("b") > "2"'], then: ['get b'] }),
      txn({ if: ['c("a") < "2"'], then: ['get b'], else: ['get a'] }),
      txn({ if: ['mod("b") = "4"'], then: ['get b'] }),
      txn({ if: ['m("b") > "4"'], then: ['get b'], else: ['get c'] }),
      txn({ if: ['mod("c") < "6"'], then: ['get c'] }),
      txn({ if: ['mod("c") != "5"'], then: ['get c'], else: ['get a'] }),
      note(txn({ if: ['value("a") = "10"', 'ver("b") = "2"', 'mod("c") = "5"'], then: ['get a'], else: ['get b'] }), 'all true'),
      note(txn({ if: ['value("a") = "10"', 'ver("b") = "3"', 'mod("c") = "5"'], then: ['get a'], else: ['get b'] }), 'one false'),
      note(txn({ if: ['ver("nokey") = "0"'], then: ['get a'], else: ['get b'] }), 'missing key has version 0'),
      txn({ if: ['create("nokey") = "0"'], then: ['get a'], else: ['get b'] }),
      txn({ if: ['mod("nokey") < "1"'], then: ['get a'], else: ['get b'] }),
      note(txn({ if: ['value("nokey") = ""'], then: ['get a'], else: ['get b'] }), 'value compare on a missing key always fails'),
      txn({ if: ['value("nokey") != "x"'], then: ['get a'], else: ['get b'] }),
      note(txn({ if: ['value("a") = "10"'] }), 'no ops'),
      note(txn({ if: ['value("a") = "nope"'] }), 'no ops, false: "succeeded" omitted'),
      note(txn({}), 'empty txn'),
      txn({ if: ['value("a") = "10"'], then: ['put a 12'], else: ['put a 13'] }, 'plain'),
      txn({ if: ['value("a") = "10"'], then: ['put a 14'], else: ['put a 15', 'get a'] }, 'plain'),
      txn({ if: ['ver("b") = "2"'], then: ['get b', 'del c --prev-kv'], else: [] }, 'interactive'),
      json('get', '', '--prefix'),
    ],
  },

  {
    name: 'txn-ops',
    description: 'txn put/get/del with flags inside the branches, reads after writes, errors',
    steps: [
      json('put', 'a', '1'), // 2
      json('put', 'b', '2'), // 3
      json('put', 'p/1', 'x'), // 4
      json('put', 'p/2', 'y'), // 5
      note(txn({ then: ['get a', 'put a 2', 'get a', 'put n 1', 'get n --rev=2', 'get a --rev=3', 'del b --prev-kv', 'get b'] }), 'reads see earlier writes of the same txn; a read before the first write reports the pre-txn revision in its header'),
      txn({ then: ['put a 3 --prev-kv', 'put new v --prev-kv', 'get p/ --prefix --keys-only', 'get a p/2 --limit=1'] }),
      txn({ then: ['get --from-key a --sort-by=MODIFY --order=DESCEND --limit=3', 'get "" --prefix --keys-only --sort-by=VALUE'] }),
      txn({ then: ['del p/ --prefix --prev-kv', 'get p/ --prefix'] }),
      txn({ then: ['put p/3 z', 'del nothing', 'del x y'] }),
      txn({ then: ['put a 4', 'put b 4'], else: ['put c 4'] }),
      txn({ if: ['value("a") = "4"'], then: ['put a --ignore-value --prev-kv'] }),
      note(txn({ then: ['put x 1', 'put x 2'] }), 'duplicate key'),
      note(txn({ then: ['put x 1', 'del x'] }), 'put and delete of one key'),
      note(txn({ then: ['del p/ --prefix', 'put p/9 1'] }), 'put inside a deleted range'),
      note(txn({ then: ['get x', 'put x 1', 'get x'] }), 'get and put of one key is allowed'),
      note(txn({ if: ['value("a") = "0"'], then: ['put y 1'], else: ['put y 2', 'put y 3'] }), 'duplicate in the failure branch'),
      note(txn({ then: ['put y 1'], else: ['put y 2'] }), 'same key in both branches is allowed'),
      note(txn({ then: ['put "" 1'] }), 'empty key in a put'),
      note(txn({ if: ['value("") = "1"'] }), 'empty key in a compare'),
      note(txn({ then: ['put missing --ignore-value'] }), 'ignore_value on a missing key'),
      note(txn({ then: ['put k v --lease=1234abcd'] }), 'unknown lease'),
      note(txn({ then: Array.from({ length: 128 }, (_, i) => `put many/${i} v`) }), '128 ops: the default --max-txn-ops'),
      note(txn({ then: Array.from({ length: 129 }, (_, i) => `put many/${i} w`) }), '129 ops: too many operations'),
      rpc('Range', { key: 'many/', range_end: 'many0', count_only: true }),
      json('get', 'many/1', '--prefix', '--keys-only', '--limit=3'),
      note(txn({ if: ['bad("a") = "1"'] }), 'etcdctl-side: malformed compare'),
      note(txn({ then: ['frob a'] }), 'etcdctl-side: unknown op'),
      json('get', '', '--prefix', '--keys-only'),
    ],
  },

  {
    name: 'txn-grpc',
    description: 'gRPC Txn features etcdctl 3.4 cannot express: compare over a range, LEASE compare, nested txn',
    steps: [
      json('put', 'p/1', 'x'), // 2
      json('put', 'p/2', 'x'), // 3
      json('put', 'p/3', 'y'), // 4
      json('put', 'q', 'x'), // 5
      rpc('Txn', {
        compare: [{ key: 'p/1', range_end: 'p/3', target: 'VALUE', result: 'EQUAL', value: 'x' }],
        success: [{ request_range: { key: 'p/', range_end: 'p0' } }],
        failure: [{ request_range: { key: 'q' } }],
      }, 'all values in [p/1, p/3) equal x'),
      rpc('Txn', {
        compare: [{ key: 'p/', range_end: 'p0', target: 'VALUE', result: 'EQUAL', value: 'x' }],
        success: [{ request_range: { key: 'p/', range_end: 'p0' } }],
        failure: [{ request_range: { key: 'q' } }],
      }, 'one value in the range differs'),
      rpc('Txn', {
        compare: [{ key: 'p/', range_end: 'p0', target: 'VERSION', result: 'GREATER', version: 0 }],
        success: [{ request_put: { key: 'r', value: '1' } }],
      }),
      rpc('Txn', {
        compare: [{ key: 'p/', range_end: 'p0', target: 'CREATE', result: 'LESS', create_revision: 4 }],
        success: [{ request_range: { key: 'r' } }],
        failure: [{ request_range: { key: 'q' } }],
      }),
      rpc('Txn', {
        compare: [{ key: 'p/', range_end: 'p0', target: 'MOD', result: 'NOT_EQUAL', mod_revision: 3 }],
        success: [{ request_range: { key: 'r' } }],
        failure: [{ request_range: { key: 'q' } }],
      }),
      rpc('Txn', {
        compare: [{ key: 'x/', range_end: 'x0', target: 'VERSION', result: 'EQUAL', version: 0 }],
        success: [{ request_range: { key: 'r' } }],
      }, 'compare over an empty range'),
      rpc('Txn', {
        compare: [{ key: 'x/', range_end: 'x0', target: 'VALUE', result: 'EQUAL', value: '' }],
        success: [{ request_range: { key: 'r' } }],
        failure: [{ request_range: { key: 'q' } }],
      }, 'value compare over an empty range'),
      rpc('Txn', {
        compare: [{ key: 'p/', range_end: '\0', target: 'VERSION', result: 'GREATER', version: 0 }],
        success: [{ request_range: { key: 'q' } }],
      }, 'compare from key'),
      rpc('Txn', {
        compare: [{ key: 'q', target: 'LEASE', result: 'EQUAL', lease: 0 }],
        success: [{ request_range: { key: 'q' } }],
        failure: [{ request_range: { key: 'r' } }],
      }, 'lease compare: no lease'),
      rpc('Txn', {
        compare: [{ key: 'q', target: 'LEASE', result: 'GREATER', lease: 0 }],
        success: [{ request_range: { key: 'q' } }],
        failure: [{ request_range: { key: 'r' } }],
      }),
      rpc('Txn', {
        compare: [{ key: 'p/1', target: 'VALUE', result: 'EQUAL', value: 'x' }],
        success: [
          { request_put: { key: 'n/outer', value: '1' } },
          {
            request_txn: {
              compare: [{ key: 'q', target: 'VALUE', result: 'EQUAL', value: 'x' }],
              success: [{ request_put: { key: 'n/inner', value: '2', prev_kv: true } }, { request_range: { key: 'n/', range_end: 'n0' } }],
              failure: [{ request_delete_range: { key: 'q' } }],
            },
          },
          { request_range: { key: 'n/', range_end: 'n0', count_only: true } },
        ],
      }, 'nested txn: the nested ResponseTxn header has revision 0'),
      rpc('Txn', {
        success: [
          { request_put: { key: 'd', value: '1' } },
          { request_txn: { success: [{ request_put: { key: 'd', value: '2' } }] } },
        ],
      }, 'duplicate key across nesting'),
      rpc('Txn', {
        success: [
          { request_txn: { success: [{ request_put: { key: 'e', value: '1' } }], failure: [{ request_put: { key: 'e', value: '2' } }] } },
        ],
      }, 'same key in both nested branches'),
      rpc('Txn', {
        success: [{ request_range: { key: 'p/', range_end: 'p0', count_only: true, min_mod_revision: 3 } }, { request_range: { key: 'p/', range_end: 'p0', revision: 3 } }],
      }, 'range fields inside a txn'),
      rpc('Txn', { compare: [{ key: 'q', target: 'VALUE', result: 'EQUAL', value: 'x' }], success: [{ request_range: { key: 'q', revision: 99 } }] }, 'future revision inside a txn'),
      rpc('Txn', { success: [{ request_delete_range: { key: 'p/', range_end: 'p0', prev_kv: true } }, { request_range: { key: '\0', range_end: '\0', keys_only: true } }] }),
      json('get', '', '--prefix'),
    ],
  },

  {
    name: 'key-bytes',
    description: 'keys are ordered byte-wise (UTF-8 / raw bytes), not by JS string (UTF-16) order',
    steps: [
      json('put', 'a', '1'),
      json('put', 'ｚ', 'U+FF5A, UTF-8 ef bd 9a'),
      json('put', '😀', 'U+1F600, UTF-8 f0 9f 98 80, UTF-16 d83d de00'),
      json('put', 'é', 'U+00E9, UTF-8 c3 a9'),
      json('put', 'Z', '5a'),
      note(json('get', '', '--prefix', '--keys-only'), 'byte order: Z a é ｚ 😀'),
      json('get', 'é', '--from-key', '--keys-only'),
      json('get', 'ｚ', '😀', '--keys-only'),
      json('get', '', '--prefix', '--keys-only', '--sort-by=KEY', '--order=DESCEND'),
      json('get', '', '--prefix', '--keys-only', '--sort-by=VALUE'),
      plain('get', '', '--prefix', '--hex'),
      rpc('Put', { key: bytes(0xff), value: 'ff' }),
      rpc('Put', { key: bytes(0xfe, 0xff), value: 'fe ff' }),
      rpc('Put', { key: bytes(0x80), value: '80' }),
      rpc('Put', { key: bytes(0xc3, 0x28), value: 'invalid UTF-8' }),
      rpc('Put', { key: bytes(0x00, 0x01), value: '00 01' }),
      rpc('Put', { key: bytes(0x61, 0x00), value: '61 00' }),
      rpc('Put', { key: 'bin', value: bytes(0x00, 0xff, 0xc3, 0x28) }),
      json('get', '', '--prefix', '--keys-only'),
      rpc('Range', { key: bytes(0x80), range_end: bytes(0xff), keys_only: true }),
      rpc('Range', { key: bytes(0xff), range_end: bytes(0x00) }, 'from 0xff'),
      rpc('Range', { key: 'a', range_end: 'b', keys_only: true }, 'a and a\\x00'),
      rpc('Range', { key: bytes(0xfe), range_end: bytes(0xff) }, 'prefix fe'),
      rpc('Range', { key: 'bin' }),
      rpc('Range', { key: bytes(0x00), range_end: bytes(0x00), sort_target: 'VALUE', sort_order: 'DESCEND', keys_only: true }),
      rpc('DeleteRange', { key: bytes(0xc3), range_end: bytes(0xc4), prev_kv: true }, 'deletes é and c3 28'),
      rpc('DeleteRange', { key: bytes(0xff), range_end: bytes(0x00), prev_kv: true }),
      json('get', '', '--from-key', '--keys-only'),
    ],
  },

  {
    name: 'compaction',
    description: 'compaction N / --physical; reads below, at and above the compacted revision; errors',
    steps: [
      json('put', 'k', 'v1'), // 2
      json('put', 'k', 'v2'), // 3
      json('put', 'k', 'v3'), // 4
      json('del', 'k'), // 5
      json('put', 'k', 'v4'), // 6
      json('put', 'other', 'x'), // 7
      json('get', 'k', '--rev=2'),
      json('get', '', '--prefix', '--rev=4'),
      plain('compaction', '3'),
      note(json('get', 'k', '--rev=2'), 'below the compacted revision: error'),
      plain('get', 'k', '--rev=2'),
      note(json('get', 'k', '--rev=3'), 'at the compacted revision: still readable'),
      json('get', 'k', '--rev=4'),
      json('get', '', '--prefix', '--rev=5'),
      json('get', 'k'),
      note(json('get', 'k', '--rev=8'), 'future: error'),
      note(plain('compaction', '3'), 'already compacted: error'),
      plain('compaction', '2'),
      note(plain('compaction', '100'), 'future: error'),
      note(plain('compaction', '8'), 'future by one'),
      note(plain('compaction', '5', '--physical'), 'the revision that deleted k'),
      json('get', 'k', '--rev=4'),
      json('get', '', '--prefix', '--rev=5'),
      json('get', '', '--prefix', '--rev=6'),
      rpc('Range', { key: 'k', revision: 4, count_only: true }),
      rpc('Range', { key: 'k', revision: 5, count_only: true }),
      rpc('Txn', { success: [{ request_range: { key: 'k', revision: 2 } }] }, 'compacted revision inside a txn'),
      txn({ then: ['get k --rev=4'] }),
      txn({ then: ['get k --rev=5'] }),
      json('put', 'k', 'v5', '--prev-kv'),
      plain('compaction', '8', '--physical'),
      note(plain('compaction', '8'), 'the current revision'),
      json('get', 'k', '--rev=8'),
      json('get', 'k', '--rev=7'),
      json('get', '', '--prefix'),
      rpc('Compact', { revision: 8 }),
      rpc('Compact', { revision: 9 }),
      rpc('Compact', { revision: 9, physical: true }),
      json('put', 'k', 'v6'),
      rpc('Compact', { revision: 9, physical: true }),
      note(plain('compaction', 'abc'), 'etcdctl-side usage error'),
      note(plain('compaction'), 'etcdctl-side usage error'),
    ],
  },

  {
    name: 'compaction-fresh',
    description: 'compaction on an empty server: 0 and the current revision are allowed once',
    steps: [
      plain('compaction', '0'),
      plain('compaction', '0'),
      plain('compaction', '1', '--physical'),
      plain('compaction', '1'),
      plain('compaction', '2'),
      json('get', 'a', '--rev=1'),
      json('get', 'a', '--rev=0'),
      json('put', 'a', '1'),
      json('get', 'a', '--rev=1'),
      plain('compaction', '2'),
      json('get', 'a', '--rev=1'),
      json('get', 'a', '--rev=2'),
    ],
  },
];
