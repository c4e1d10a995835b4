import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bindListener, bindListeners, MAX_EARLY_CONNECTIONS, type BoundListener } from '../../src/net/bound-listener';

// Listeners are bound before the member opens its data dir (issue #16): connections that arrive before
// it serves are held, unread, and handed over in order once it does; their number is bounded.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const url = (port = 0) => new URL(`http://127.0.0.1:${port}`);
const open: BoundListener[] = [];
const clients: net.Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const l of open.splice(0)) await l.close();
});

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
    c.on('error', reject);
    clients.push(c);
  });
}

describe('bound listeners', () => {
  it('hold what arrives before serving and hand it over with its bytes, in order', async () => {
    const l = await bindListener(url(), 'clients', 2379);
    open.push(l);
    const a = await connect(l.port);
    a.write('first');
    const b = await connect(l.port);
    b.write('second');
    await sleep(100);
    const got: string[] = [];
    l.serve((sock) => {
      sock.on('data', (d) => {
        got.push(d.toString());
        sock.write(`echo ${d}`);
      });
    });
    const answer = await new Promise<string>((r) => a.once('data', (d) => r(d.toString())));
    expect(answer).toBe('echo first');
    await sleep(50);
    expect(got).toEqual(['first', 'second']);
    // Later connections go straight to the handler.
    const c = await connect(l.port);
    c.write('third');
    expect(await new Promise<string>((r) => c.once('data', (d) => r(d.toString())))).toBe('echo third');
  });

  it('close connections beyond the bound while not serving; those held are all handed over', async () => {
    const l = await bindListener(url(), 'clients', 2379);
    open.push(l);
    const held: net.Socket[] = [];
    for (let i = 0; i < MAX_EARLY_CONNECTIONS; i++) held.push(await connect(l.port));
    held[MAX_EARLY_CONNECTIONS - 1].write('last');
    const extra = await connect(l.port);
    const closed = await new Promise<boolean>((r) => {
      extra.once('close', () => r(true));
      setTimeout(() => r(false), 2000);
    });
    expect(closed).toBe(true);
    let served = 0;
    const last = new Promise<string>((r) => l.serve((sock) => {
      served++;
      sock.on('data', (d) => r(d.toString()));
    }));
    expect(await last).toBe('last');
    expect(served).toBe(MAX_EARLY_CONNECTIONS);
  });

  it('a busy port is one line naming the URL, and what was bound before it is released', async () => {
    const first = await bindListener(url(), 'peers', 2380);
    open.push(first);
    const spare = await bindListener(url(), 'peers', 2380);
    const sparePort = spare.port;
    await spare.close();
    await expect(bindListeners([url(sparePort), url(first.port)], 'peers', 2380)).rejects.toThrow(
      `cannot listen for peers on http://127.0.0.1:${first.port}/: address already in use`,
    );
    // The first URL of the failed call was bound, then closed again.
    const again = await bindListener(url(sparePort), 'peers', 2380);
    open.push(again);
    expect(again.port).toBe(sparePort);
  });
});
