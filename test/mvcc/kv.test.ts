import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { CompareResult, CompareTarget, SortOrder, SortTarget, type Compare, type TxnRequest } from '../../src/mvcc/types';
import { revisionBytes } from '../../src/mvcc/revision';
import { b, ENGINE_KINDS, prefixEnd, putReq, rangeReq, TestStore } from '../helpers/stores';

const keys = (kvs: { key: Buffer }[]) => kvs.map((kv) => kv.key.toString());
const vals = (kvs: { value: Buffer }[]) => kvs.map((kv) => kv.value.toString());

function cmp(key: string, target: number, result: number, operand: string | number, rangeEnd = ''): Compare {
  return {
    key: b(key), rangeEnd: rangeEnd === '\0' ? Buffer.from([0]) : b(rangeEnd), target, result,
    value: target === CompareTarget.VALUE ? b(String(operand)) : Buffer.alloc(0),
    number: target === CompareTarget.VALUE ? 0n : BigInt(operand),
  };
}

describe.each(ENGINE_KINDS)('mvcc on %s', (kind) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await new TestStore(kind, { compaction: { batchLimit: 3, sleepMs: 0 } }).open();
  });
  afterEach(async () => {
    await t.close();
  });

  it('starts at revision 1 and gives each write the next revision', () => {
    expect(t.kv.rev).toBe(1);
    expect(t.kv.put(putReq('a', '1')).revision).toBe(2);
    expect(t.kv.put(putReq('a', '2')).revision).toBe(3);
    expect(t.kv.put(putReq('b', '1')).revision).toBe(4);
    const r = t.kv.range(rangeReq('a'));
    expect(r.revision).toBe(4);
    expect(r.kvs[0]).toMatchObject({ createRevision: 2, modRevision: 3, version: 2 });
    expect(r.kvs[0].value.toString()).toBe('2');
  });

  it('answers put with prev_kv, ignore_value and ignore_lease as etcd', () => {
    t.kv.put(putReq('k', 'v1'));
    const r = t.kv.put(putReq('k', 'v2', { prevKv: true }));
    expect(r.prevKv?.value.toString()).toBe('v1');
    expect(t.kv.put(putReq('new', 'x', { prevKv: true })).prevKv).toBeUndefined();
    t.kv.put(putReq('k', '', { ignoreValue: true }));
    expect(vals(t.kv.range(rangeReq('k')).kvs)).toEqual(['v2']);
    expect(() => t.kv.put(putReq('missing', '', { ignoreValue: true }))).toThrow(Errors.keyNotFound);
    expect(() => t.kv.put(putReq('missing', 'x', { ignoreLease: true }))).toThrow(Errors.keyNotFound);
    expect(() => t.kv.put(putReq('k', 'x', { lease: 42n }))).toThrow(Errors.leaseNotFound);
    expect(t.kv.rev).toBe(5); // the refused puts changed nothing
  });

  describe('range options', () => {
    beforeEach(() => {
      // rev 2..6: a=5 b=4 c=3 d=2 e=1 ; then rewrite c (rev 7) and b (rev 8)
      ['a', 'b', 'c', 'd', 'e'].forEach((k, i) => t.kv.put(putReq(k, String(5 - i))));
      t.kv.put(putReq('c', '9'));
      t.kv.put(putReq('b', '0'));
    });

    const cases: [string, Parameters<typeof rangeReq>, { keys: string[]; count: number; more?: boolean }][] = [
      ['single key', ['c', {}], { keys: ['c'], count: 1 }],
      ['missing key', ['zz', {}], { keys: [], count: 0 }],
      ['range [b, d)', ['b', { end: 'd' }], { keys: ['b', 'c'], count: 2 }],
      ['end <= key is empty', ['d', { end: 'b' }], { keys: [], count: 0 }],
      ['from key ("\\0" end)', ['c', { end: '\0' }], { keys: ['c', 'd', 'e'], count: 3 }],
      ['all keys', ['\0', { end: '\0' }], { keys: ['a', 'b', 'c', 'd', 'e'], count: 5 }],
      ['limit sets more, count stays total', ['a', { end: '\0', limit: 2 }], { keys: ['a', 'b'], count: 5, more: true }],
      ['limit equal to count: no more', ['a', { end: '\0', limit: 5 }], { keys: ['a', 'b', 'c', 'd', 'e'], count: 5, more: false }],
      ['count_only', ['a', { end: '\0', countOnly: true }], { keys: [], count: 5 }],
      ['sort by value ascending', ['a', { end: '\0', sortTarget: SortTarget.VALUE, sortOrder: SortOrder.ASCEND }], { keys: ['b', 'e', 'd', 'a', 'c'], count: 5 }],
      ['sort by value, order NONE means ascend', ['a', { end: '\0', sortTarget: SortTarget.VALUE }], { keys: ['b', 'e', 'd', 'a', 'c'], count: 5 }],
      ['sort by key descending', ['a', { end: '\0', sortOrder: SortOrder.DESCEND }], { keys: ['e', 'd', 'c', 'b', 'a'], count: 5 }],
      ['sort by mod descending with limit', ['a', { end: '\0', sortTarget: SortTarget.MOD, sortOrder: SortOrder.DESCEND, limit: 2 }], { keys: ['b', 'c'], count: 5, more: true }],
      ['sort by version descending: ties keep key order', ['a', { end: '\0', sortTarget: SortTarget.VERSION, sortOrder: SortOrder.DESCEND }], { keys: ['b', 'c', 'a', 'd', 'e'], count: 5 }],
      ['sort by create ascending', ['a', { end: '\0', sortTarget: SortTarget.CREATE, sortOrder: SortOrder.ASCEND }], { keys: ['a', 'b', 'c', 'd', 'e'], count: 5 }],
      ['min_mod_revision', ['a', { end: '\0', minModRevision: 6 }], { keys: ['b', 'c', 'e'], count: 5 }],
      ['max_mod_revision', ['a', { end: '\0', maxModRevision: 5 }], { keys: ['a', 'd'], count: 5 }],
      ['min_create_revision', ['a', { end: '\0', minCreateRevision: 4 }], { keys: ['c', 'd', 'e'], count: 5 }],
      ['max_create_revision with limit', ['a', { end: '\0', maxCreateRevision: 4, limit: 1 }], { keys: ['a'], count: 5, more: true }],
      ['historical revision 4', ['a', { end: '\0', revision: 4 }], { keys: ['a', 'b', 'c'], count: 3 }],
      ['prefix', ['b', { end: prefixEnd('b') }], { keys: ['b'], count: 1 }],
    ];
    it.each(cases)('%s', (_name, args, want) => {
      const r = t.kv.range(rangeReq(...args));
      expect(keys(r.kvs)).toEqual(want.keys);
      expect(r.count).toBe(want.count);
      expect(r.more).toBe(want.more ?? false);
      expect(r.revision).toBe(8);
    });

    it('keys_only drops values, keeps revisions', () => {
      const r = t.kv.range(rangeReq('c', { keysOnly: true }));
      expect(r.kvs[0].value.length).toBe(0);
      expect(r.kvs[0]).toMatchObject({ createRevision: 4, modRevision: 7, version: 2 });
    });

    it('historical reads see old values and versions', () => {
      const r = t.kv.range(rangeReq('c', { revision: 6 }));
      expect(vals(r.kvs)).toEqual(['3']);
      expect(r.kvs[0]).toMatchObject({ modRevision: 4, version: 1 });
      expect(r.revision).toBe(8); // the header carries the current revision
    });

    it('refuses future revisions', () => {
      expect(() => t.kv.range(rangeReq('a', { revision: 9 }))).toThrow(Errors.futureRev);
      expect(t.kv.range(rangeReq('a', { revision: 8 })).kvs).toHaveLength(1);
    });
  });

  it('deletes ranges with tombstones: generations, prev_kvs and recreation', () => {
    t.kv.put(putReq('p/1', 'a')); // 2
    t.kv.put(putReq('p/2', 'b')); // 3
    t.kv.put(putReq('q', 'c')); // 4
    const d = t.kv.deleteRange({ key: b('p/'), rangeEnd: b(prefixEnd('p/')), prevKv: true });
    expect(d).toMatchObject({ revision: 5, deleted: 2 });
    expect(vals(d.prevKvs)).toEqual(['a', 'b']);
    const none = t.kv.deleteRange({ key: b('nope'), rangeEnd: Buffer.alloc(0), prevKv: false });
    expect(none).toMatchObject({ revision: 5, deleted: 0 }); // nothing deleted: no new revision
    expect(t.kv.range(rangeReq('p/', { end: prefixEnd('p/') })).count).toBe(0);
    expect(t.kv.range(rangeReq('p/1', { revision: 4 })).kvs).toHaveLength(1);
    // A new generation starts at version 1 with a new create revision.
    t.kv.put(putReq('p/1', 'again')); // 6
    expect(t.kv.range(rangeReq('p/1')).kvs[0]).toMatchObject({ createRevision: 6, modRevision: 6, version: 1 });
    // delete all from a key
    expect(t.kv.deleteRange({ key: b('\0'), rangeEnd: Buffer.from([0]), prevKv: false })).toMatchObject({ deleted: 2, revision: 7 });
  });

  describe('txn', () => {
    beforeEach(() => {
      t.kv.put(putReq('k', 'v')); // 2
      t.kv.put(putReq('k', 'w')); // 3 (version 2, create 2)
      t.kv.put(putReq('x', '1')); // 4
    });

    const compares: [string, Compare, boolean][] = [
      ['value =', cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, 'w'), true],
      ['value !=', cmp('k', CompareTarget.VALUE, CompareResult.NOT_EQUAL, 'w'), false],
      ['value >', cmp('k', CompareTarget.VALUE, CompareResult.GREATER, 'v'), true],
      ['value <', cmp('k', CompareTarget.VALUE, CompareResult.LESS, 'v'), false],
      ['value of a missing key is never true', cmp('missing', CompareTarget.VALUE, CompareResult.NOT_EQUAL, 'x'), false],
      ['version =', cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, 2), true],
      ['version of a missing key is 0', cmp('missing', CompareTarget.VERSION, CompareResult.EQUAL, 0), true],
      ['create <', cmp('k', CompareTarget.CREATE, CompareResult.LESS, 3), true],
      ['create >', cmp('k', CompareTarget.CREATE, CompareResult.GREATER, 2), false],
      ['mod =', cmp('k', CompareTarget.MOD, CompareResult.EQUAL, 3), true],
      ['mod !=', cmp('k', CompareTarget.MOD, CompareResult.NOT_EQUAL, 3), false],
      ['lease = 0', cmp('k', CompareTarget.LEASE, CompareResult.EQUAL, 0), true],
      ['range compare: every key must match', cmp('k', CompareTarget.MOD, CompareResult.GREATER, 2, '\0'), true],
      ['range compare: one key fails', cmp('k', CompareTarget.MOD, CompareResult.GREATER, 3, '\0'), false],
    ];
    it.each(compares)('compare %s', (_name, c, want) => {
      const r = t.kv.txn({ compare: [c], success: [], failure: [] });
      expect(r.succeeded).toBe(want);
      expect(r.revision).toBe(4); // no writes: no new revision
    });

    it('gives the whole txn one revision and lets later ops see earlier ones', () => {
      const req: TxnRequest = {
        compare: [cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, 'w')],
        success: [
          { put: putReq('t1', 'a') },
          { put: putReq('t2', 'b', { prevKv: true }) },
          { range: rangeReq('t', { end: 'u' }) },
          { deleteRange: { key: b('x'), rangeEnd: Buffer.alloc(0), prevKv: true } },
        ],
        failure: [{ put: putReq('f', 'f') }],
      };
      const r = t.kv.txn(req);
      expect(r.succeeded).toBe(true);
      expect(r.revision).toBe(5);
      const [p1, p2, rg, del] = r.responses as any[];
      expect(p1.put.revision).toBe(5);
      expect(p2.put.revision).toBe(5);
      expect(keys(rg.range.kvs)).toEqual(['t1', 't2']);
      expect(rg.range.revision).toBe(5);
      expect(del.deleteRange).toMatchObject({ deleted: 1, revision: 5 });
      const after = t.kv.range(rangeReq('t', { end: 'u' }));
      expect(after.kvs.map((kv) => kv.modRevision)).toEqual([5, 5]);
      expect(t.kv.range(rangeReq('f')).count).toBe(0);
    });

    it('runs the failure branch and nested txns on their own paths', () => {
      const r = t.kv.txn({
        compare: [cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, 'nope')],
        success: [{ put: putReq('s', '1') }],
        failure: [
          { txn: { compare: [cmp('x', CompareTarget.VERSION, CompareResult.EQUAL, 1)], success: [{ put: putReq('n1', 'yes') }], failure: [{ put: putReq('n1', 'no') }] } },
          { txn: { compare: [cmp('x', CompareTarget.VERSION, CompareResult.EQUAL, 9)], success: [{ put: putReq('n2', 'yes') }], failure: [{ put: putReq('n2', 'no') }] } },
          { range: rangeReq('n', { end: 'o' }) },
        ],
      });
      expect(r.succeeded).toBe(false);
      expect(r.revision).toBe(5);
      const [t1, t2, rg] = r.responses as any[];
      expect(t1.txn.succeeded).toBe(true);
      expect(t2.txn.succeeded).toBe(false);
      expect(vals(rg.range.kvs)).toEqual(['yes', 'no']);
      expect(t.kv.range(rangeReq('s')).count).toBe(0);
    });

    it('checks the taken branch before writing anything', () => {
      const req: TxnRequest = { compare: [], success: [{ put: putReq('a', '1') }, { put: putReq('b', '', { ignoreValue: true }) }], failure: [] };
      expect(() => t.kv.txn(req)).toThrow(Errors.keyNotFound);
      const req2: TxnRequest = { compare: [], success: [{ put: putReq('a', '1') }, { range: rangeReq('k', { revision: 99 }) }], failure: [] };
      expect(() => t.kv.txn(req2)).toThrow(Errors.futureRev);
      expect(t.kv.rev).toBe(4);
      expect(t.kv.range(rangeReq('a')).count).toBe(0);
    });
  });

  describe('compaction', () => {
    beforeEach(() => {
      t.kv.put(putReq('a', '1')); // 2
      t.kv.put(putReq('a', '2')); // 3
      t.kv.put(putReq('b', '1')); // 4
      t.kv.deleteRange({ key: b('b'), rangeEnd: Buffer.alloc(0), prevKv: false }); // 5
      t.kv.put(putReq('a', '3')); // 6
      t.kv.put(putReq('c', '1')); // 7
    });

    it('keeps reads at and after the compacted revision, refuses those before', async () => {
      await t.kv.compact(5).done;
      expect(() => t.kv.range(rangeReq('a', { revision: 4 }))).toThrow(Errors.compacted);
      expect(vals(t.kv.range(rangeReq('a', { revision: 5 })).kvs)).toEqual(['2']);
      expect(t.kv.range(rangeReq('b', { revision: 5 })).count).toBe(0);
      expect(vals(t.kv.range(rangeReq('a', { revision: 6 })).kvs)).toEqual(['3']);
      expect(t.kv.range(rangeReq('a')).kvs[0]).toMatchObject({ createRevision: 2, version: 3 });
      // revision 0 means "now", which is never compacted
      expect(t.kv.range(rangeReq('\0', { end: '\0' })).count).toBe(2);
    });

    it('refuses compaction at or below the compacted revision and above the current one', async () => {
      expect(() => t.kv.compact(8)).toThrow(Errors.futureRev);
      await t.kv.compact(4).done;
      expect(() => t.kv.compact(4)).toThrow(Errors.compacted);
      expect(() => t.kv.compact(3)).toThrow(Errors.compacted);
      await t.kv.compact(7).done; // current revision is allowed
      expect(() => t.kv.range(rangeReq('a', { revision: 6 }))).toThrow(Errors.compacted);
    });

    it('removes the compacted revisions from the backend, keeps the ones still visible', async () => {
      await t.kv.compact(5).done;
      const has = (main: number, sub = 0, tomb = false) => t.backend.get('key', revisionBytes(main, sub, tomb)) !== undefined;
      expect(has(2)).toBe(false); // a@2 superseded by a@3
      expect(has(3)).toBe(true); // a@3 is a's value at rev 5
      expect(has(4)).toBe(false); // b was deleted at 5
      expect(has(5, 0, true)).toBe(false); // b's tombstone is dropped too
      expect(has(6)).toBe(true);
      expect(has(7)).toBe(true);
    });

    it('survives a restart: index rebuilt, compaction revision kept', async () => {
      await t.kv.compact(5).done;
      await t.reopen();
      expect(t.kv.rev).toBe(7);
      expect(() => t.kv.range(rangeReq('a', { revision: 4 }))).toThrow(Errors.compacted);
      expect(vals(t.kv.range(rangeReq('a', { revision: 5 })).kvs)).toEqual(['2']);
      expect(t.kv.range(rangeReq('a')).kvs[0]).toMatchObject({ createRevision: 2, modRevision: 6, version: 3 });
      expect(t.kv.put(putReq('a', '4')).revision).toBe(8);
      expect(t.kv.range(rangeReq('a')).kvs[0]).toMatchObject({ version: 4 });
    });
  });

  it('rebuilds the same state after a restart', async () => {
    for (let i = 0; i < 50; i++) t.kv.put(putReq(`k${i % 7}`, `v${i}`));
    t.kv.deleteRange({ key: b('k3'), rangeEnd: Buffer.alloc(0), prevKv: false });
    t.kv.txn({ compare: [], success: [{ put: putReq('k3', 'back') }, { deleteRange: { key: b('k5'), rangeEnd: Buffer.alloc(0), prevKv: false } }], failure: [] });
    const before = t.kv.range(rangeReq('\0', { end: '\0' }));
    const hist = t.kv.range(rangeReq('\0', { end: '\0', revision: 30 }));
    await t.reopen();
    expect(t.kv.range(rangeReq('\0', { end: '\0' }))).toEqual(before);
    expect(t.kv.range(rangeReq('\0', { end: '\0', revision: 30 }))).toEqual(hist);
    expect(t.kv.rev).toBe(before.revision);
  });

  it('after deleting everything and compacting, a restart keeps the revision', async () => {
    t.kv.put(putReq('a', '1')); // 2
    t.kv.deleteRange({ key: b('a'), rangeEnd: Buffer.alloc(0), prevKv: false }); // 3
    await t.kv.compact(3).done;
    await t.reopen();
    expect(t.kv.rev).toBe(3);
    expect(t.kv.put(putReq('a', '2')).revision).toBe(4);
  });
});
