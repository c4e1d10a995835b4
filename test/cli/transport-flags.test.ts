import { afterEach, describe, expect, it } from 'vitest';
import { E, F, frame, RawH2, requestBlock, settingOf, T } from '../helpers/raw-h2';
import { startPlinth, type RunningServer } from '../helpers/servers';

// etcd's transport flags reach the client connections of a `plinth` process (the behaviour behind each is
// tested in test/api/h2/connection-limits.test.ts; here: the command line wires them).

const running: RunningServer[] = [];
const conns: RawH2[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  for (const s of running.splice(0)) await s.stop();
});

const SETTINGS_MAX_CONCURRENT_STREAMS = 3;

async function open(extraArgs: string[]): Promise<{ s: RunningServer; c: RawH2 }> {
  const s = await startPlinth({ backend: 'memory', extraArgs });
  running.push(s);
  const c = new RawH2(s.port);
  conns.push(c);
  await c.connected;
  return { s, c };
}

describe('transport flags', () => {
  it('--max-concurrent-streams is announced; by default nothing is (no limit, as etcd)', async () => {
    const limited = await open(['--max-concurrent-streams', '7']);
    const st = await limited.c.waitFor((f) => f.type === T.SETTINGS && !(f.flags & F.ACK), 5000);
    expect(settingOf(st!, SETTINGS_MAX_CONCURRENT_STREAMS)).toBe(7);
    const plain = await open([]);
    const st2 = await plain.c.waitFor((f) => f.type === T.SETTINGS && !(f.flags & F.ACK), 5000);
    expect(settingOf(st2!, SETTINGS_MAX_CONCURRENT_STREAMS)).toBeUndefined();
  });

  it('--grpc-keepalive-min-time: pings spaced wider than it, with a call open, are no strikes; with no call open they are', async () => {
    // With etcd's default (5 s) the second ping below would already be a strike, the fourth a GOAWAY.
    const { c } = await open(['--grpc-keepalive-min-time', '1s']);
    c.send(frame(T.HEADERS, F.END_HEADERS, 1, requestBlock('/etcdserverpb.Watch/Watch')));
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 1200));
      c.send(frame(T.PING, 0, 0, Buffer.alloc(8, i)));
    }
    await c.waitFor((f) => f.type === T.PING && (f.flags & F.ACK) !== 0 && f.payload[0] === 3, 3000);
    expect(c.goAway()).toBeUndefined();
    const idle = await open(['--grpc-keepalive-min-time', '1s']);
    for (let i = 0; i < 4; i++) idle.c.send(frame(T.PING, 0, 0, Buffer.alloc(8, i)));
    await idle.c.waitFor((f) => f.type === T.GOAWAY, 5000);
    expect(idle.c.goAway()).toEqual({ code: E.ENHANCE_YOUR_CALM, debug: 'too_many_pings' });
  });

  it('--grpc-keepalive-interval / --grpc-keepalive-timeout: an idle client is pinged, and closed when it does not answer', async () => {
    const { c } = await open(['--grpc-keepalive-interval', '1s', '--grpc-keepalive-timeout', '300ms']);
    const ping = await c.waitFor((f) => f.type === T.PING && !(f.flags & F.ACK), 4000);
    expect(ping).toBeDefined();
    expect(await c.waitClosed(4000)).toBe(true);
  });
});
