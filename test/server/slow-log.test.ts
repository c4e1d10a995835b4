import { afterAll, describe, expect, it } from 'vitest';
import { RawKv } from '../api/grpc-client';
import { startPlinth, type RunningServer } from '../helpers/servers';

// One structured line per request slower than --experimental-warning-apply-duration, with etcd's
// message and fields; none below it.
const b = (s: string) => Buffer.from(s);
const lines = (logs: string) => logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

describe('slow request log', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('logs every request over the threshold as a JSON line', async () => {
    const s = await startPlinth({ backend: 'memory', extraArgs: ['--experimental-warning-apply-duration', '1ns'] });
    servers.push(s);
    const kv = new RawKv(s.endpoint);
    await kv.put({ key: b('slow-key'), value: b('secret-value') });
    await kv.range({ key: b('slow-key') });
    kv.close();
    await new Promise((r) => setTimeout(r, 100));
    const logged = lines(s.logs()).filter((l) => l.msg === 'apply request took too long');
    const put = logged.find((l) => l.prefix === '' && String(l.request).includes('slow-key'));
    const read = logged.find((l) => l.prefix === 'read-only range ');
    expect(put).toMatchObject({ level: 'warn', caller: 'server/slow-log.ts', 'expected-duration': '1ns' });
    expect(Object.keys(put)).toEqual(['level', 'ts', 'caller', 'msg', 'took', 'expected-duration', 'prefix', 'request', 'response']);
    expect(put.request).toContain('value_size:12');
    expect(put.request).not.toContain('secret-value'); // values are not logged
    expect(put.took).toMatch(/^\d+(\.\d+)?(ns|µs|ms|s)$/); // a Go duration, as etcd's
    expect(read.request).toContain('key:"slow-key"');
    expect(read.response).toBe('range_response_count:1 count:1');
  });

  it('logs nothing for requests under the default 100 ms', async () => {
    const s = await startPlinth({ backend: 'memory' });
    servers.push(s);
    const kv = new RawKv(s.endpoint);
    for (let i = 0; i < 20; i++) await kv.put({ key: b(`k${i}`), value: b('v') });
    kv.close();
    expect(lines(s.logs()).filter((l) => l.msg === 'apply request took too long')).toEqual([]);
  });
});
