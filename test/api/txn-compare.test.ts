import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../helpers/servers';
import { apiTargets, RawKv, startTarget, type Compare } from './grpc-client';

// Compare operands come only from the oneof member that matches the compare's target; any other
// member leaves the operand zero (etcd's compareKV). Clients rarely send that, but the wire allows it.
describe.each(apiTargets())('txn compare operands (%s)', (target) => {
  let server: RunningServer;
  let kv: RawKv;
  beforeAll(async () => {
    server = await startTarget(target);
    kv = new RawKv(server.endpoint);
    await kv.put({ key: Buffer.from('k'), value: Buffer.from('v') }); // rev 2, version 1
  });
  afterAll(async () => {
    kv?.close();
    await server?.stop();
  });

  const cases: [string, Compare, boolean][] = [
    ['VERSION with its own member', { key: Buffer.from('k'), target: 'VERSION', result: 'EQUAL', version: 1 }, true],
    ['VERSION with mod_revision set compares with 0', { key: Buffer.from('k'), target: 'VERSION', result: 'EQUAL', mod_revision: 1 }, false],
    ['VERSION with mod_revision set: GREATER than 0', { key: Buffer.from('k'), target: 'VERSION', result: 'GREATER', mod_revision: 9 }, true],
    ['MOD with version set compares with 0', { key: Buffer.from('k'), target: 'MOD', result: 'GREATER', version: 99 }, true],
    ['VALUE with version set compares with empty', { key: Buffer.from('k'), target: 'VALUE', result: 'GREATER', version: 1 }, true],
    ['CREATE with no member compares with 0', { key: Buffer.from('k'), target: 'CREATE', result: 'EQUAL' }, false],
    ['LEASE with its own member', { key: Buffer.from('k'), target: 'LEASE', result: 'EQUAL', lease: 0 }, true],
  ];
  it.each(cases)('%s', async (_name, compare, succeeded) => {
    const r = await kv.txn({ compare: [compare], success: [], failure: [] });
    expect(r.succeeded).toBe(succeeded);
  });
});
