// Throughput figures for the transport (not assertions): run with
//   PLINTH_TRANSPORT_PERF=1 npx vitest run test/raft/transport/perf.test.ts
// Both transports share one process (one core), so each figure pays for both ends.

import { describe, it } from 'vitest';
import type { Message } from '../../../src/raft/core/types';
import { decodeMessages, encodeMessages } from '../../../src/raft/transport/message-codec';
import { mesh, startNode, type TestNode } from './harness';
import { msgApp, msgAppResp } from './random-messages';

const SECONDS = Number(process.env.PLINTH_TRANSPORT_PERF_SECONDS ?? 3);

function report(name: string, n: number, ms: number, extra = ''): void {
  console.log(`${name}: ${Math.round((n * 1000) / ms).toLocaleString('en')} /s over ${ms} ms ${extra}`);
}

describe.skipIf(!process.env.PLINTH_TRANSPORT_PERF)('transport performance', () => {
  it('codec: encode+decode of a 300-byte MsgApp batch of 1 and of 100', () => {
    for (const size of [1, 100]) {
      const msgs = Array.from({ length: size }, (_, i) => msgApp(1n, 2n, i));
      const t0 = Date.now();
      let n = 0;
      while (Date.now() - t0 < 1000) {
        for (let i = 0; i < 100; i++) decodeMessages(encodeMessages(msgs));
        n += 100 * size;
      }
      report(`codec round trip, batches of ${size}`, n, Date.now() - t0, 'messages');
    }
  });

  it('MsgApp (300 B) / MsgAppResp ping-pong, pipelined, batched', async () => {
    const a: TestNode = await startNode(1n, { quiet: true });
    const b: TestNode = await startNode(2n, { quiet: true });
    try {
      await mesh([a, b]);
      // b answers every MsgApp with a MsgAppResp, all answers of one batch in one send.
      let answer: (msgs: Message[]) => void = () => {};
      b.onMessages = (_f, msgs) => {
        const out: Message[] = new Array(msgs.length);
        for (let i = 0; i < msgs.length; i++) out[i] = msgAppResp(2n, 1n, msgs[i].index);
        b.t.send(out);
      };
      a.onMessages = (_f, msgs) => answer(msgs);

      // 1. one message in flight
      {
        let n = 0;
        const t0 = Date.now();
        await new Promise<void>((done) => {
          answer = () => {
            n++;
            if (Date.now() - t0 >= SECONDS * 1000) return done();
            a.t.send([msgApp(1n, 2n, n)]);
          };
          a.t.send([msgApp(1n, 2n, 0)]);
        });
        report('ping-pong (1 in flight)', n, Date.now() - t0, 'round trips');
      }
      // 2. a window of messages in flight, each answer sends the next one
      for (const window of [16, 256]) {
        let n = 0;
        const t0 = Date.now();
        let stop = false;
        await new Promise<void>((done) => {
          let outstanding = window;
          answer = (msgs) => {
            n += msgs.length;
            outstanding -= msgs.length;
            if (Date.now() - t0 >= SECONDS * 1000) stop = true;
            if (stop) {
              if (outstanding === 0) done();
              return;
            }
            const next: Message[] = msgs.map((m) => msgApp(1n, 2n, m.index + window));
            outstanding += next.length;
            a.t.send(next);
          };
          a.t.send(Array.from({ length: window }, (_, i) => msgApp(1n, 2n, i)));
        });
        report(`pipelined (${window} in flight)`, n, Date.now() - t0, 'round trips');
      }
      // 3. batches: 1000 MsgApp in one turn, wait for all answers, repeat
      {
        let n = 0;
        const t0 = Date.now();
        const batch = (): Message[] => Array.from({ length: 1000 }, (_, i) => msgApp(1n, 2n, n + i));
        await new Promise<void>((done) => {
          let got = 0;
          answer = (msgs) => {
            got += msgs.length;
            if (got < 1000) return;
            n += 1000;
            got = 0;
            if (Date.now() - t0 >= SECONDS * 1000) return done();
            a.t.send(batch());
          };
          a.t.send(batch());
        });
        const ms = Date.now() - t0;
        report('batched (1000 per turn)', n, ms, `messages (${((n * 355) / 1024 / 1024 / (ms / 1000)).toFixed(1)} MiB/s of MsgApp)`);
      }
      console.log('stats a→b', a.t.stats().get(2n));
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);
});
