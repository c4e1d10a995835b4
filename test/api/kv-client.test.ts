// KV through the npm `etcd3` client, against every target (see grpc-client.ts: apiTargets()).
// Values AND revisions are asserted exactly as real etcd 3.4.23 gives them: run with
// PLINTH_API_TARGETS=etcd to check the tests themselves.
//
// The tests of one target share one fresh server and run in order; each test works under its own
// key prefix and computes revisions relative to the revision it finds when it starts.
import { Etcd3, type IKeyValue, type IResponseOp } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../helpers/servers';
import { apiTargets, startTarget } from './grpc-client';

/** Key, value, create_revision, mod_revision, version, lease of a KeyValue, as strings. */
function kvRow(kv: IKeyValue): [string, string, string, string, string, string] {
  return [
    kv.key.toString(),
    kv.value.toString(),
    String(kv.create_revision),
    String(kv.mod_revision),
    String(kv.version),
    String(kv.lease),
  ];
}

const s = (n: number) => String(n);

/** Which kind of response a txn op produced. */
function opKind(r: IResponseOp): string {
  if (r.response_put) return 'put';
  if (r.response_range) return 'range';
  if (r.response_delete_range) return 'delete_range';
  if (r.response_txn) return 'txn';
  return 'none';
}

describe.each(apiTargets())('KV via the etcd3 client (%s)', (target) => {
  let server: RunningServer;
  let client: Etcd3;

  beforeAll(async () => {
    server = await startTarget(target);
    client = new Etcd3({ hosts: server.url });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  /** Current revision, read without writing. */
  async function revision(): Promise<number> {
    const res = await client.get('\0revision-probe').exec();
    return Number(res.header.revision);
  }

  it('a fresh server is at revision 1 with no keys, and has a stable cluster/member id', async () => {
    const res = await client.getAll().exec();
    expect(res.header.revision).toBe('1');
    expect(res.kvs).toEqual([]);
    expect(res.count).toBe('0');
    expect(res.more).toBe(false);
    expect(await client.getAll().count()).toBe(0);

    expect(res.header.cluster_id).toMatch(/^[1-9]\d*$/);
    expect(res.header.member_id).toMatch(/^[1-9]\d*$/);
    const again = await client.get('x').exec();
    expect([again.header.cluster_id, again.header.member_id]).toEqual([res.header.cluster_id, res.header.member_id]);
  });

  it('put / get: values, header revision, create/mod revision, version', async () => {
    const base = await revision();

    const p1 = await client.put('kv/a').value('1');
    expect(p1.header.revision).toBe(s(base + 1));
    expect(await client.get('kv/a').string()).toBe('1');

    const g1 = await client.get('kv/a').exec();
    expect(g1.header.revision).toBe(s(base + 1));
    expect(g1.count).toBe('1');
    expect(g1.more).toBe(false);
    expect(g1.kvs.map(kvRow)).toEqual([['kv/a', '1', s(base + 1), s(base + 1), '1', '0']]);

    const p2 = await client.put('kv/a').value('2');
    expect(p2.header.revision).toBe(s(base + 2));
    const g2 = await client.get('kv/a').exec();
    expect(g2.kvs.map(kvRow)).toEqual([['kv/a', '2', s(base + 1), s(base + 2), '2', '0']]);

    // Another key gets its own create_revision and version 1.
    await client.put('kv/b').value('x');
    expect((await client.get('kv/b').exec()).kvs.map(kvRow)).toEqual([['kv/b', 'x', s(base + 3), s(base + 3), '1', '0']]);

    // Missing keys.
    expect(await client.get('kv/missing').string()).toBeNull();
    expect(await client.get('kv/missing').exists()).toBe(false);
    const miss = await client.get('kv/missing').exec();
    expect(miss.kvs).toEqual([]);
    expect(miss.count).toBe('0');
    expect(miss.header.revision).toBe(s(base + 3));

    // Empty and numeric values.
    await client.put('kv/empty').value('');
    expect(await client.get('kv/empty').string()).toBe('');
    expect(await client.get('kv/empty').exists()).toBe(true);
    await client.put('kv/num').value(42);
    expect(await client.get('kv/num').number()).toBe(42);
    expect(await revision()).toBe(base + 5);
  });

  it('binary keys and values round-trip byte for byte and sort bytewise', async () => {
    const prefix = Buffer.from([0x00, 0x01, 0xfe]); // not valid UTF-8
    const keys = [0xff, 0x00, 0x80, 0x7f, 0xc3].map((b) => Buffer.concat([prefix, Buffer.from([b, 0xff, 0x00])]));
    const value = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x00]);
    for (const k of keys) await client.put(k).value(value);
    for (const k of keys) expect(Buffer.compare((await client.get(k).buffer())!, value)).toBe(0);

    const got = await client.getAll().prefix(prefix).keyBuffers();
    const sorted = [...keys].sort(Buffer.compare);
    expect(got.map((b) => b.toString('hex'))).toEqual(sorted.map((b) => b.toString('hex')));
  });

  it('a 1 MiB value round-trips', async () => {
    const value = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 131 + 17) & 0xff;
    await client.put('kv/large').value(value);
    const got = await client.get('kv/large').buffer();
    expect(got!.length).toBe(value.length);
    expect(Buffer.compare(got!, value)).toBe(0);
  });

  it('put with prevKv returns the previous key-value (nothing for a new key); touch keeps the value', async () => {
    const base = await revision();

    const first = await client.put('pkv/k').value('old').getPrevious();
    expect(first.header.revision).toBe(s(base + 1));
    expect(first.key).toBeUndefined(); // no previous kv

    const second = await client.put('pkv/k').value('new').getPrevious();
    expect(second.header.revision).toBe(s(base + 2));
    expect(kvRow(second)).toEqual(['pkv/k', 'old', s(base + 1), s(base + 1), '1', '0']);

    // Raw response: prev_kv absent for a new key.
    const raw = await client.kv.put({ key: Buffer.from('pkv/other'), value: Buffer.from('v'), prev_kv: true });
    expect(raw.header.revision).toBe(s(base + 3));
    expect(raw.prev_kv ?? null).toBeNull();

    // touch() = ignore_value: new mod_revision and version, same value.
    const touched = await client.put('pkv/k').touch();
    expect(touched.header.revision).toBe(s(base + 4));
    const g = await client.get('pkv/k').exec();
    expect(g.kvs.map(kvRow)).toEqual([['pkv/k', 'new', s(base + 1), s(base + 4), '3', '0']]);
  });

  it('getAll().prefix(): keys, strings, count, in key order', async () => {
    // Around the prefix 'pre/': 'pre' and 'pre0' ('0' sorts after '/') are outside it.
    for (const [k, v] of [['pre/b', '2'], ['pre', 'x'], ['pre/a', '1'], ['pre0', 'y'], ['pre/c', '3'], ['pre/a/deeper', '4']]) {
      await client.put(k).value(v);
    }
    const rev = await revision();

    expect(await client.getAll().prefix('pre/').keys()).toEqual(['pre/a', 'pre/a/deeper', 'pre/b', 'pre/c']);
    expect(await client.getAll().prefix('pre/').strings()).toEqual({ 'pre/a': '1', 'pre/a/deeper': '4', 'pre/b': '2', 'pre/c': '3' });
    expect(await client.getAll().prefix('pre/').count()).toBe(4);
    expect(await client.getAll().prefix('pre').count()).toBe(6);

    const res = await client.getAll().prefix('pre/').exec();
    expect(res.header.revision).toBe(s(rev));
    expect(res.count).toBe('4');
    expect(res.more).toBe(false);
    expect(res.kvs.map((kv) => kv.key.toString())).toEqual(['pre/a', 'pre/a/deeper', 'pre/b', 'pre/c']);

    // count_only returns no kvs; keys_only returns no values.
    const countOnly = await client.kv.range({ key: Buffer.from('pre/'), range_end: Buffer.from('pre0'), count_only: true });
    expect(countOnly.kvs).toEqual([]);
    expect(countOnly.count).toBe('4');
    const keysOnly = await client.kv.range({ key: Buffer.from('pre/'), range_end: Buffer.from('pre0'), keys_only: true });
    expect(keysOnly.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.version])).toEqual([
      ['pre/a', '', '1'],
      ['pre/a/deeper', '', '1'],
      ['pre/b', '', '1'],
      ['pre/c', '', '1'],
    ]);

    // An explicit [start, end) range and a from-key range ('\0' end).
    expect(await client.getAll().inRange({ start: 'pre/a', end: 'pre/c' }).keys()).toEqual(['pre/a', 'pre/a/deeper', 'pre/b']);
    const fromKey = await client.kv.range({ key: Buffer.from('pre/c'), range_end: Buffer.from([0]), keys_only: true });
    expect(fromKey.kvs.map((kv) => kv.key.toString()).slice(0, 2)).toEqual(['pre/c', 'pre0']);
  });

  it('delete: deleted count, prev kvs, one revision per delete, none for a no-op delete', async () => {
    for (const k of ['del/1', 'del/2', 'del/3', 'del/4', 'delx']) await client.put(k).value(`v-${k}`);
    const base = await revision();

    const one = await client.delete().key('del/1').exec();
    expect(one.deleted).toBe('1');
    expect(one.header.revision).toBe(s(base + 1));
    expect(one.prev_kvs).toEqual([]);
    expect(await client.get('del/1').string()).toBeNull();

    // Deleting nothing does not create a revision.
    const none = await client.delete().key('del/nope').exec();
    expect(none.deleted).toBe('0');
    expect(none.header.revision).toBe(s(base + 1));
    const noneRange = await client.delete().prefix('nothing-here/').exec();
    expect(noneRange.deleted).toBe('0');
    expect(await revision()).toBe(base + 1);

    // prev_kv on a single key, through the raw KV.
    const rawOne = await client.kv.deleteRange({ key: Buffer.from('del/2'), prev_kv: true });
    expect(rawOne.deleted).toBe('1');
    expect(rawOne.header.revision).toBe(s(base + 2));
    expect(rawOne.prev_kvs.map(kvRow)).toEqual([['del/2', 'v-del/2', s(base - 3), s(base - 3), '1', '0']]);

    // A range delete is one revision, and getPrevious() returns all deleted kvs in key order.
    const prev = await client.delete().prefix('del/').getPrevious();
    expect(prev.map(kvRow)).toEqual([
      ['del/3', 'v-del/3', s(base - 2), s(base - 2), '1', '0'],
      ['del/4', 'v-del/4', s(base - 1), s(base - 1), '1', '0'],
    ]);
    expect(await revision()).toBe(base + 3);
    expect(await client.getAll().prefix('del/').count()).toBe(0);
    expect(await client.get('delx').string()).toBe('v-delx');

    // Re-creating a deleted key starts a new life: new create_revision, version 1.
    await client.put('del/1').value('again');
    const g = await client.get('del/1').exec();
    expect(g.kvs.map(kvRow)).toEqual([['del/1', 'again', s(base + 4), s(base + 4), '1', '0']]);
  });

  describe('sort and limit', () => {
    // Create order c, a, e, b, d; values: a=5 b=4 c=3 d=2 e=1; then a is put twice more and d
    // once more, so mod order is c, e, b, a, d and versions a=3, d=2, others 1.
    let base = 0;
    const keysOf = (kvs: IKeyValue[]) => kvs.map((kv) => kv.key.toString().slice('srt/'.length));

    beforeAll(async () => {
      base = await revision();
      for (const [k, v] of [['c', '3'], ['a', '5'], ['e', '1'], ['b', '4'], ['d', '2'], ['a', '5'], ['a', '5'], ['d', '2']]) {
        await client.put(`srt/${k}`).value(v);
      }
    });

    it('has the expected revisions to sort on', async () => {
      const res = await client.getAll().prefix('srt/').exec();
      expect(res.kvs.map(kvRow)).toEqual([
        ['srt/a', '5', s(base + 2), s(base + 7), '3', '0'],
        ['srt/b', '4', s(base + 4), s(base + 4), '1', '0'],
        ['srt/c', '3', s(base + 1), s(base + 1), '1', '0'],
        ['srt/d', '2', s(base + 5), s(base + 8), '2', '0'],
        ['srt/e', '1', s(base + 3), s(base + 3), '1', '0'],
      ]);
    });

    it('limit without sort returns the first keys, more=true and the full count', async () => {
      const res = await client.getAll().prefix('srt/').limit(2).exec();
      expect(keysOf(res.kvs)).toEqual(['a', 'b']);
      expect(res.more).toBe(true);
      expect(res.count).toBe('5');
      expect(await client.getAll().prefix('srt/').limit(2).count()).toBe(5);
      const all = await client.getAll().prefix('srt/').limit(5).exec();
      expect(all.more).toBe(false);
      expect(keysOf(all.kvs)).toEqual(['a', 'b', 'c', 'd', 'e']);
    });

    it.each([
      ['Key', 'Descend', 2, ['e', 'd']],
      ['Key', 'Ascend', 3, ['a', 'b', 'c']],
      ['Value', 'Ascend', 2, ['e', 'd']],
      ['Value', 'Descend', 3, ['a', 'b', 'c']],
      ['Create', 'Ascend', 3, ['c', 'a', 'e']],
      ['Create', 'Descend', 2, ['d', 'b']],
      ['Mod', 'Ascend', 4, ['c', 'e', 'b', 'a']],
      ['Mod', 'Descend', 2, ['d', 'a']],
      ['Version', 'Descend', 2, ['a', 'd']],
    ] as const)('sort(%s, %s).limit(%i): the limit applies after sorting the whole range', async (tgt, order, limit, want) => {
      const res = await client.getAll().prefix('srt/').sort(tgt, order).limit(limit).exec();
      expect(keysOf(res.kvs)).toEqual(want);
      expect(res.more).toBe(true);
      expect(res.count).toBe('5');
    });

    // etcd quirk (server/etcdserver apply.go, Range): with sort_order NONE the store is read with
    // limit+1 (the extra row only to compute `more`), and a sort_target other than KEY then sorts
    // ASCENDING just those limit+1 rows before truncating to `limit`. So the answer is NOT the
    // smallest values of the whole range: Value/None/limit 2 reads a, b, c (in key order), sorts
    // them by value (c=3, b=4, a=5) and returns c, b.
    it.each([
      ['Value', 1, ['b'], true], // reads a, b
      ['Value', 2, ['c', 'b'], true], // reads a, b, c
      ['Value', 3, ['d', 'c', 'b'], true], // reads a, b, c, d
      ['Mod', 2, ['c', 'b'], true], // reads a(mod 7) b(4) c(1)
      ['Mod', 3, ['c', 'b', 'a'], true], // reads a b c d(8)
      ['Create', 3, ['c', 'a', 'b'], true], // reads a(create 2) b(4) c(1) d(5)
      ['Value', 5, ['e', 'd', 'c', 'b', 'a'], false], // reads all five
      ['Key', 2, ['a', 'b'], true], // KEY + NONE: plain key order
    ] as const)('sort(%s, None).limit(%i) sorts only the first limit+1 keys, ascending', async (tgt, limit, want, more) => {
      const res = await client.getAll().prefix('srt/').sort(tgt, 'None').limit(limit).exec();
      expect(keysOf(res.kvs)).toEqual(want);
      expect(res.more).toBe(more);
      expect(res.count).toBe('5');
    });

    it('sort(target, None) without a limit sorts the whole range ascending', async () => {
      const res = await client.getAll().prefix('srt/').sort('Value', 'None').exec();
      expect(keysOf(res.kvs)).toEqual(['e', 'd', 'c', 'b', 'a']);
    });

    it('sort without limit returns the whole range in that order', async () => {
      const res = await client.getAll().prefix('srt/').sort('Value', 'Ascend').exec();
      expect(keysOf(res.kvs)).toEqual(['e', 'd', 'c', 'b', 'a']);
      expect(res.more).toBe(false);
      expect(await client.getAll().prefix('srt/').sort('Key', 'Descend').keys()).toEqual(['srt/e', 'srt/d', 'srt/c', 'srt/b', 'srt/a']);
    });
  });

  it('historical reads with .revision()', async () => {
    const r1 = Number((await client.put('hist/k').value('v1')).header.revision);
    const r2 = Number((await client.put('hist/k').value('v2')).header.revision);
    await client.put('hist/other').value('o');
    const r4 = Number((await client.delete().key('hist/k').exec()).header.revision);
    const r5 = Number((await client.put('hist/k').value('v3')).header.revision);
    expect([r2, r4, r5]).toEqual([r1 + 1, r1 + 3, r1 + 4]);

    expect(await client.get('hist/k').revision(r1 - 1).string()).toBeNull(); // before creation
    expect(await client.get('hist/k').revision(r1).string()).toBe('v1');
    expect(await client.get('hist/k').revision(r2).string()).toBe('v2');
    expect(await client.get('hist/k').revision(r2 + 1).string()).toBe('v2');
    expect(await client.get('hist/k').revision(r4).string()).toBeNull(); // deleted
    expect(await client.get('hist/k').revision(r5).string()).toBe('v3');
    expect(await client.get('hist/k').revision(String(r2)).string()).toBe('v2');

    // The kv is as of that revision; the header still carries the current revision.
    const at2 = await client.get('hist/k').revision(r2).exec();
    expect(at2.header.revision).toBe(s(r5));
    expect(at2.kvs.map(kvRow)).toEqual([['hist/k', 'v2', s(r1), s(r2), '2', '0']]);
    const at5 = await client.get('hist/k').revision(r5).exec();
    expect(at5.kvs.map(kvRow)).toEqual([['hist/k', 'v3', s(r5), s(r5), '1', '0']]);

    // Ranges too, with counts as of that revision.
    expect(await client.getAll().prefix('hist/').revision(r1).keys()).toEqual(['hist/k']);
    expect(await client.getAll().prefix('hist/').revision(r2 + 1).strings()).toEqual({ 'hist/k': 'v2', 'hist/other': 'o' });
    expect(await client.getAll().prefix('hist/').revision(r4).keys()).toEqual(['hist/other']);
    expect(await client.getAll().prefix('hist/').revision(r4).count()).toBe(1);

    // A future revision is refused.
    await expect(client.get('hist/k').revision(r5 + 1).string()).rejects.toThrow(
      /etcdserver: mvcc: required revision is a future revision/,
    );
  });

  describe('transactions', () => {
    it('then-branch: compare on value succeeds, all puts share one revision', async () => {
      await client.put('txn/k').value('v1');
      const base = await revision();
      const res = await client
        .if('txn/k', 'Value', '==', 'v1')
        .then(client.put('txn/k').value('v2'), client.put('txn/k2').value('x'), client.get('txn/k'))
        .else(client.put('txn/else').value('no'))
        .commit();
      expect(res.succeeded).toBe(true);
      expect(res.header.revision).toBe(s(base + 1));
      expect(res.responses.map(opKind)).toEqual(['put', 'put', 'range']);
      expect(res.responses[0].response_put!.header.revision).toBe(s(base + 1));
      // A range inside the txn sees the txn's earlier writes.
      expect(res.responses[2].response_range!.kvs.map(kvRow)).toEqual([['txn/k', 'v2', s(base), s(base + 1), '2', '0']]);
      expect(await client.get('txn/k2').exec().then((r) => r.kvs.map(kvRow))).toEqual([['txn/k2', 'x', s(base + 1), s(base + 1), '1', '0']]);
      expect(await client.get('txn/else').string()).toBeNull();
    });

    it('else-branch: failed compare runs the else ops; a read-only txn makes no revision', async () => {
      const base = await revision();
      const res = await client
        .if('txn/k', 'Value', '==', 'v1') // it is v2 now
        .then(client.put('txn/k').value('v3'))
        .else(client.get('txn/k'))
        .commit();
      expect(res.succeeded).toBe(false);
      expect(res.header.revision).toBe(s(base));
      expect(res.responses.map(opKind)).toEqual(['range']);
      expect(res.responses[0].response_range!.kvs.map((kv) => kv.value.toString())).toEqual(['v2']);
      expect(await client.get('txn/k').string()).toBe('v2');
      expect(await revision()).toBe(base);
    });

    it('else-branch writes get a revision; deletes in a txn report counts', async () => {
      await client.put('txn/d/1').value('a');
      await client.put('txn/d/2').value('b');
      const base = await revision();
      const res = await client
        .if('txn/k', 'Version', '>', 10)
        .then(client.put('txn/never').value('x'))
        .else(client.delete().prefix('txn/d/'), client.put('txn/else').value('yes'))
        .commit();
      expect(res.succeeded).toBe(false);
      expect(res.header.revision).toBe(s(base + 1));
      expect(res.responses[0].response_delete_range!.deleted).toBe('2');
      expect(await client.get('txn/else').string()).toBe('yes');
      expect(await client.getAll().prefix('txn/d/').count()).toBe(0);
      expect(await client.get('txn/never').exists()).toBe(false);
    });

    it('compares on create/mod revision and version, combined with and()', async () => {
      const g = (await client.get('txn/k').exec()).kvs[0]; // value v2, version 2
      const create = Number(g.create_revision);
      const mod = Number(g.mod_revision);
      const cases: [Parameters<Etcd3['if']>, boolean][] = [
        [['txn/k', 'Version', '==', 2], true],
        [['txn/k', 'Version', '<', 2], false],
        [['txn/k', 'Create', '==', create], true],
        [['txn/k', 'Create', '>', create], false],
        [['txn/k', 'Mod', '==', mod], true],
        [['txn/k', 'Mod', '<', mod + 1], true],
        [['txn/k', 'Mod', '!=', mod], false],
        [['txn/k', 'Value', '!=', 'v2'], false],
        [['txn/k', 'Value', '>', 'v1'], true],
        [['txn/k', 'Value', '<', 'v1'], false],
        // A missing key has version/create/mod 0 ...
        [['txn/missing', 'Version', '==', 0], true],
        [['txn/missing', 'Create', '==', 0], true],
        [['txn/missing', 'Mod', '<', 1], true],
        // ... but a value comparison on a missing key is always false, even "!=".
        [['txn/missing', 'Value', '==', ''], false],
        [['txn/missing', 'Value', '!=', 'x'], false],
      ];
      const base = await revision();
      for (const [cmp, want] of cases) {
        const res = await client.if(...cmp).then(client.get('txn/k')).else(client.get('txn/k')).commit();
        expect(res.succeeded, `${cmp.join(' ')}`).toBe(want);
      }
      const both = await client.if('txn/k', 'Version', '==', 2).and('txn/missing', 'Create', '==', 0).commit();
      expect(both.succeeded).toBe(true);
      const notBoth = await client.if('txn/k', 'Version', '==', 2).and('txn/missing', 'Create', '!=', 0).commit();
      expect(notBoth.succeeded).toBe(false);
      expect(await revision()).toBe(base);
    });

    it('lock idiom: create-if-absent succeeds once', async () => {
      const tryLock = (id: string) =>
        client.if('txn/lock', 'Create', '==', 0).then(client.put('txn/lock').value(id)).else(client.get('txn/lock')).commit();
      const a = await tryLock('a');
      const b = await tryLock('b');
      expect([a.succeeded, b.succeeded]).toEqual([true, false]);
      expect(b.responses[0].response_range!.kvs[0].value.toString()).toBe('a');
      expect(Number(b.header.revision)).toBe(Number(a.header.revision));
    });
  });

  it('compaction via the raw KV: old revisions are gone, newer ones are readable', async () => {
    const r0 = Number((await client.put('cmp/keep').value('kept')).header.revision);
    const revs: number[] = [];
    for (let i = 1; i <= 3; i++) revs.push(Number((await client.put('cmp/k').value(`c${i}`)).header.revision));
    const [r1, r2, r3] = revs;

    const res = await client.kv.compact({ revision: r2 });
    expect(res.header.revision).toBe(s(r3));
    expect(await revision()).toBe(r3); // compaction does not create a revision

    await expect(client.get('cmp/k').revision(r1).string()).rejects.toThrow(
      /etcdserver: mvcc: required revision has been compacted/,
    );
    await expect(client.kv.range({ key: Buffer.from('cmp/k'), revision: r2 - 1 })).rejects.toThrow(
      /etcdserver: mvcc: required revision has been compacted/,
    );
    expect(await client.get('cmp/k').revision(r2).string()).toBe('c2');
    expect(await client.get('cmp/k').revision(r3).string()).toBe('c3');
    expect(await client.get('cmp/k').string()).toBe('c3');

    // The current data is unaffected: a key last written before the compacted revision survives,
    // with its revisions, at the current revision and at any revision >= the compacted one.
    expect((await client.get('cmp/keep').exec()).kvs.map(kvRow)).toEqual([['cmp/keep', 'kept', s(r0), s(r0), '1', '0']]);
    expect(await client.get('cmp/keep').revision(r2).string()).toBe('kept');

    await expect(client.kv.compact({ revision: r2 })).rejects.toThrow(/etcdserver: mvcc: required revision has been compacted/);
    await expect(client.kv.compact({ revision: r3 + 1 })).rejects.toThrow(/etcdserver: mvcc: required revision is a future revision/);
    expect(await revision()).toBe(r3);

    // Writes continue from the same revision counter after a compaction.
    const after = await client.put('cmp/k').value('c4');
    expect(after.header.revision).toBe(s(r3 + 1));
    expect((await client.get('cmp/k').exec()).kvs.map(kvRow)).toEqual([['cmp/k', 'c4', s(r1), s(r3 + 1), '4', '0']]);
  });
});
