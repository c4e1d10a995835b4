import { describe, expect, it } from 'vitest';
import { KeyLayout, VERB_NAMES, Verb, txnFirstKey } from '../../src/ops/layout';
import type { Compare, RangeRequest, TxnRequest } from '../../src/mvcc/types';
import { CompareResult, CompareTarget } from '../../src/mvcc/types';
import { truthOf } from './helpers';

const b = (s: string) => Buffer.from(s, 'latin1');

function range(key: string, rangeEnd = ''): { range: RangeRequest } {
  return {
    range: {
      key: b(key), rangeEnd: b(rangeEnd), limit: 0, revision: 0, sortOrder: 0, sortTarget: 0, serializable: false,
      keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    },
  };
}
const put = (key: string) => ({ put: { key: b(key), value: b('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } });
const del = (key: string, rangeEnd = '') => ({ deleteRange: { key: b(key), rangeEnd: b(rangeEnd), prevKv: false } });
const cmp = (target: number, key: string, n: bigint, result: number = CompareResult.EQUAL): Compare => ({ result, target, key: b(key), rangeEnd: b(''), value: b(''), number: n });

describe('KeyLayout', () => {
  const cases: [string, string, string, string][] = [
    // key, resource, namespace, cold prefix
    ['/registry/pods/default/web-1', 'pods', 'default', '/registry/pods/default/'],
    ['/registry/nodes/node-1', 'nodes', '(cluster)', '/registry/nodes/'],
    ['/registry/namespaces/default', 'namespaces', '(cluster)', '/registry/namespaces/'],
    ['/registry/services/specs/default/kubernetes', 'services/specs', 'default', '/registry/services/specs/default/'],
    ['/registry/services/endpoints/kube-system/kube-dns', 'services/endpoints', 'kube-system', '/registry/services/endpoints/kube-system/'],
    ['/registry/apiregistration.k8s.io/apiservices/v1.apps', 'apiregistration.k8s.io/apiservices', '(cluster)', '/registry/apiregistration.k8s.io/apiservices/'],
    ['/registry/cilium.io/ciliumendpoints/kube-system/ep-1', 'cilium.io/ciliumendpoints', 'kube-system', '/registry/cilium.io/ciliumendpoints/kube-system/'],
    ['/registry/apiextensions.k8s.io/customresourcedefinitions/foos.example.com', 'apiextensions.k8s.io/customresourcedefinitions', '(cluster)', '/registry/apiextensions.k8s.io/customresourcedefinitions/'],
    ['/registry/masterleases/10.0.0.1', 'masterleases', '(cluster)', '/registry/masterleases/'],
    // list prefixes
    ['/registry/pods/', 'pods', '(cluster)', '/registry/pods/'],
    ['/registry/pods/ns1/', 'pods', 'ns1', '/registry/pods/ns1/'],
    ['/registry/cilium.io/ciliumendpoints/', 'cilium.io/ciliumendpoints', '(cluster)', '/registry/cilium.io/ciliumendpoints/'],
    ['/registry/pods', 'pods', '(cluster)', '/registry/'],
    ['/registry/cilium.io', 'cilium.io', '(cluster)', '/registry/'],
    // not kube
    ['/registry/', '(none)', '(none)', '/registry/'],
    ['/registry//x', '(none)', '(none)', '/registry/'],
    ['compact_rev_key', '(none)', '(none)', '(other)'],
    ['/app/config/a', '(none)', '(none)', '/app/'],
    ['app/config', '(none)', '(none)', 'app/'],
    ['/registryx/pods/a/b', '(none)', '(none)', '/registryx/'],
    ['', '(none)', '(none)', '(other)'],
  ];
  it.each(cases)('%s -> %s, %s, %s', (key, resource, namespace, group) => {
    const l = new KeyLayout();
    expect([l.resourceOf(key), l.namespaceOf(key), l.groupOf(key)]).toEqual([resource, namespace, group]);
    // and the test's independent model agrees
    const t = truthOf(key);
    expect([t.resource, t.namespace, t.group]).toEqual([resource, namespace, group]);
  });

  it('takes another prefix and other two-segment resources', () => {
    const l = new KeyLayout('/kube/', ['apps']);
    expect(l.namespaceOf('/kube/pods/ns/x')).toBe('ns');
    expect(l.resourceOf('/kube/apps/deployments/ns/x')).toBe('apps/deployments');
    expect(l.resourceOf('/registry/pods/ns/x')).toBe('(none)');
    expect(() => new KeyLayout('')).toThrow();
    expect(new KeyLayout('/registry').prefix).toBe('/registry/');
    expect(new KeyLayout('/registry').namespaceOf('/registry/pods/ns/x')).toBe('ns');
  });

  it('classifies ranges as kube-apiserver issues them', () => {
    const l = new KeyLayout();
    l.parse('/registry/pods/ns/a');
    expect(VERB_NAMES[l.rangeVerb(false, false)]).toBe('get');
    l.parse('/registry/pods/');
    expect(VERB_NAMES[l.rangeVerb(true, false)]).toBe('list');
    expect(VERB_NAMES[l.rangeVerb(true, true)]).toBe('count');
    l.parse('/app/x');
    expect(VERB_NAMES[l.rangeVerb(false, false)]).toBe('range');
    expect(VERB_NAMES[l.rangeVerb(true, true)]).toBe('range');
  });

  it("classifies kube-apiserver's txns (mvcc's TxnRequest fits TxnLike)", () => {
    const l = new KeyLayout();
    const k = '/registry/pods/ns/a';
    const verb = (t: TxnRequest) => {
      l.parse(txnFirstKey(t)!.toString('latin1'));
      return VERB_NAMES[l.txnVerb(t)];
    };
    // create: If(create_revision(key) = 0).Then(put)
    expect(verb({ compare: [cmp(CompareTarget.CREATE, k, 0n)], success: [put(k)], failure: [] })).toBe('create');
    // update: If(mod_revision(key) = N).Then(put).Else(get)
    expect(verb({ compare: [cmp(CompareTarget.MOD, k, 42n)], success: [put(k)], failure: [range(k)] })).toBe('update');
    // delete: If(mod_revision(key) = N).Then(delete).Else(get)
    expect(verb({ compare: [cmp(CompareTarget.MOD, k, 42n)], success: [del(k)], failure: [range(k)] })).toBe('delete');
    // other shapes
    expect(verb({ compare: [cmp(CompareTarget.CREATE, k, 5n)], success: [put(k)], failure: [] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.MOD, k, 1n, CompareResult.GREATER)], success: [put(k)], failure: [] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.MOD, k, 1n)], success: [put(k + 'x')], failure: [] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.MOD, k, 1n)], success: [del(k, k + 'z')], failure: [] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.VERSION, k, 0n)], success: [put(k)], failure: [] })).toBe('txn');
    expect(verb({ compare: [], success: [put(k)], failure: [] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.CREATE, k, 0n), cmp(CompareTarget.CREATE, k, 0n)], success: [put(k)], failure: [] })).toBe('txn');
    // kube's compaction txn is on a key outside the layout
    expect(verb({ compare: [cmp(CompareTarget.VERSION, 'compact_rev_key', 3n)], success: [put('compact_rev_key')], failure: [range('compact_rev_key')] })).toBe('txn');
    expect(verb({ compare: [cmp(CompareTarget.CREATE, '/app/x', 0n)], success: [put('/app/x')], failure: [] })).toBe('txn');
    expect(txnFirstKey({ compare: [], success: [], failure: [] })).toBeUndefined();
    expect(Verb.expire).toBe(VERB_NAMES.indexOf('expire'));
  });
});
