// Unit tests of the comparison harness itself (no servers): normalisation must remove only what
// differs between two identical clusters, and known-difference marks must be honoured exactly.
import { describe, expect, test } from 'vitest';
import { compareScenario, failureMessage, knownReason } from './compare';
import { normaliseCtl, normaliseStderr, parseJsonExact, type NormalisedOutput } from './normalise';
import { scenarios, isGrpc, type Scenario } from './scenarios';

const noLeases = new Map<string, string>();

describe('normalise', () => {
  test('ids and raft term become placeholders, revisions stay, precision is kept', () => {
    const out = normaliseCtl(
      {
        stdout: '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":4,"raft_term":2},"kvs":[{"key":"YQ==","create_revision":2,"mod_revision":4,"version":3,"value":"Mw=="}],"count":1}\n',
        stderr: '',
        code: 0,
      },
      noLeases,
      true,
    );
    expect(out.stdout).toEqual({
      header: { cluster_id: '<cluster_id>', member_id: '<member_id>', revision: 4, raft_term: '<raft_term>' },
      kvs: [{ key: 'YQ==', create_revision: 2, mod_revision: 4, version: 3, value: 'Mw==' }],
      count: 1,
    });
    expect(parseJsonExact('{"ID":7587869786094338052}')).toEqual({ ID: '7587869786094338052' });
  });

  test('a zero or missing id stays as it is (nested txn headers carry only revision)', () => {
    const a = normaliseCtl({ stdout: '{"header":{"revision":3}}', stderr: '', code: 0 }, noLeases, true);
    const b = normaliseCtl({ stdout: '{"header":{"cluster_id":1,"member_id":2,"revision":3,"raft_term":1}}', stderr: '', code: 0 }, noLeases, true);
    expect(a).not.toEqual(b);
  });

  test('revision differences are not normalised away', () => {
    const a = normaliseCtl({ stdout: '{"header":{"cluster_id":1,"revision":3}}', stderr: '', code: 0 }, noLeases, true);
    const b = normaliseCtl({ stdout: '{"header":{"cluster_id":9,"revision":4}}', stderr: '', code: 0 }, noLeases, true);
    expect(a).not.toEqual(b);
  });

  test('lease ids: JSON fields and `lease <hex>` text, nothing else', () => {
    const leases = new Map([['L1', '7587869786094338052']]);
    const hex = BigInt('7587869786094338052').toString(16);
    const j = normaliseCtl({ stdout: '{"kvs":[{"key":"aw==","lease":7587869786094338052,"version":1}]}', stderr: '', code: 0 }, leases, true);
    expect(j.stdout).toEqual({ kvs: [{ key: 'aw==', lease: '<lease:L1>', version: 1 }] });
    const t = normaliseCtl({ stdout: `lease ${hex} revoked\n`, stderr: '', code: 0 }, leases, false);
    expect(t.stdout).toBe('lease <lease:L1> revoked');
    // a small id must not replace ordinary numbers
    const small = new Map([['L1', '1']]);
    expect(normaliseCtl({ stdout: 'OK\na\n1\n', stderr: '', code: 0 }, small, false).stdout).toBe('OK\na\n1');
  });

  test('stderr keeps the gRPC status and the Error line, drops log noise', () => {
    const stderr =
      '{"level":"warn","ts":"2026-11-24T06:00:48.681Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed",' +
      '"target":"endpoint://client-5b36c003-6725-46f4-81c1-372f7e27e26c/127.0.0.1:23791","attempt":0,' +
      '"error":"rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted"}\n' +
      'Error: etcdserver: mvcc: required revision has been compacted\n';
    expect(normaliseStderr(stderr, noLeases)).toEqual([
      'grpc: rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted',
      'Error: etcdserver: mvcc: required revision has been compacted',
    ]);
  });

  test('txn -i prompts are kept as text next to the JSON document', () => {
    const out = normaliseCtl({ stdout: 'compares:\nsuccess requests (get, put, del):\n{"header":{"revision":2}}\n', stderr: '', code: 0 }, noLeases, true);
    expect(out.stdout).toEqual({ text: 'compares:\nsuccess requests (get, put, del):', json: { header: { revision: 2 } } });
  });
});

describe('compare', () => {
  const out = (n: number): NormalisedOutput => ({ code: 0, stdout: { header: { revision: n } }, stderr: [] });
  const scenario = (marks: Partial<Scenario> & { stepMark?: Scenario['knownDifference'] } = {}): Scenario => ({
    name: 's',
    description: 'd',
    knownDifference: marks.knownDifference,
    steps: [{ args: ['get', 'a'] }, { args: ['put', 'a', '1'], knownDifference: marks.stepMark }],
  });
  const plinth = { name: 'plinth:memory', kind: 'plinth' as const };
  const etcd = { name: 'etcd', kind: 'etcd' as const };

  test('an unmarked difference fails and names the step and both outputs', () => {
    const c = compareScenario(scenario(), [out(1), out(2)], [out(1), out(3)], plinth);
    expect(c.unexpected.map((d) => d.index)).toEqual([1]);
    const msg = failureMessage(scenario(), c, plinth.name)!;
    expect(msg).toContain('step #2: etcdctl put a 1');
    expect(msg).toContain('"revision": 2');
    expect(msg).toContain('"revision": 3');
  });

  test('a marked difference is reported, not failed; a stale mark fails', () => {
    const marked = scenario({ stepMark: 'reason' });
    const c = compareScenario(marked, [out(1), out(2)], [out(1), out(3)], plinth);
    expect(c.known.map((d) => d.known)).toEqual(['reason']);
    expect(failureMessage(marked, c, plinth.name)).toBeUndefined();
    const same = compareScenario(marked, [out(1), out(2)], [out(1), out(2)], plinth);
    expect(failureMessage(marked, same, plinth.name)).toContain('remove the mark');
  });

  test('marks are per target and never apply to etcd', () => {
    expect(knownReason({ reason: 'r', targets: ['plinth:lmdb'] }, plinth)).toBeUndefined();
    expect(knownReason({ reason: 'r', targets: ['plinth:memory'] }, plinth)).toBe('r');
    expect(knownReason('r', etcd)).toBeUndefined();
    const c = compareScenario(scenario({ knownDifference: 'r' }), [out(1), out(2)], [out(1), out(3)], etcd);
    expect(c.unexpected).toHaveLength(1);
  });

  test('a scenario-level mark covers all its steps and goes stale when nothing differs', () => {
    const s = scenario({ knownDifference: 'whole scenario' });
    expect(compareScenario(s, [out(1), out(2)], [out(5), out(6)], plinth).unexpected).toHaveLength(0);
    expect(compareScenario(s, [out(1), out(2)], [out(1), out(2)], plinth).stale).toHaveLength(1);
  });
});

describe('scenario table', () => {
  test('names are unique, no known differences are invented, every step is well formed', () => {
    const names = scenarios.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const s of scenarios) {
      expect(s.steps.length).toBeGreaterThan(0);
      for (const step of s.steps) {
        if (isGrpc(step)) expect(['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']).toContain(step.grpc);
        else expect(step.args.length).toBeGreaterThan(0);
      }
    }
  });
});
