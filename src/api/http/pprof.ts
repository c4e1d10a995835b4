// --enable-pprof: etcd serves Go's net/http/pprof under /debug/pprof/ on its client URLs. Plinth serves
// what the Node runtime can give in the same place, in the formats Node's tools read:
//   /debug/pprof/                    an index of what is served here
//   /debug/pprof/profile?seconds=N   a CPU profile over N seconds (default 30, as Go's), as a
//                                    .cpuprofile (Chrome DevTools / `node --cpu-prof` format)
//   /debug/pprof/heap                a V8 heap snapshot (.heapsnapshot), streamed as it is serialised
// Go's other profiles (goroutine, block, mutex, threadcreate, allocs, trace, cmdline, symbol) have no
// Node counterpart: 404 with a line saying so. One CPU profile at a time (as Go's: its second answer is
// 500 "Could not enable CPU profiling: cpu profiling already in use"), one heap snapshot at a time.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Session } from 'node:inspector';
import { getHeapSnapshot } from 'node:v8';

export const PPROF_PREFIX = '/debug/pprof/';

/** The longest CPU profile asked for (Go bounds it by the server's write timeout; etcd sets none). */
const MAX_PROFILE_SECONDS = 3600;

const GO_ONLY = new Set(['goroutine', 'block', 'mutex', 'threadcreate', 'allocs', 'trace', 'cmdline', 'symbol']);

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end(body + '\n');
}

const INDEX = `/debug/pprof/ (Plinth on Node ${process.version})

profile?seconds=N  CPU profile over N seconds (default 30, at most ${MAX_PROFILE_SECONDS}): a .cpuprofile for Chrome DevTools or speedscope
heap               V8 heap snapshot: a .heapsnapshot for Chrome DevTools (the process pauses while V8 takes it)

Go's goroutine, block, mutex, threadcreate, allocs, trace, cmdline and symbol profiles have no Node counterpart.`;

/** Serves /debug/pprof/*; the caller checks the prefix and --enable-pprof. */
export class PprofHandler {
  private cpuBusy = false;
  private heapBusy = false;

  constructor(private readonly log: Log) {}

  handle(path: string, req: IncomingMessage, res: ServerResponse): void {
    const name = path.slice(PPROF_PREFIX.length);
    if (name === '') return text(res, 200, INDEX);
    if (name === 'profile') return this.cpuProfile(req, res);
    if (name === 'heap') return this.heapSnapshot(res);
    if (GO_ONLY.has(name)) return text(res, 404, `Unknown profile: ${name} (a Go runtime profile; Node has no counterpart)`);
    text(res, 404, `Unknown profile: ${name}`);
  }

  private cpuProfile(req: IncomingMessage, res: ServerResponse): void {
    const q = new URL(req.url ?? '/', 'http://x').searchParams.get('seconds');
    // As Go's handler: a missing, unparsable or non-positive value means 30 seconds.
    const asked = q !== null && /^\d+$/.test(q) ? Number(q) : 0;
    const seconds = asked > 0 ? asked : 30;
    if (seconds > MAX_PROFILE_SECONDS) return text(res, 400, `profile duration exceeds the limit of ${MAX_PROFILE_SECONDS} seconds`);
    if (this.cpuBusy) return text(res, 500, 'Could not enable CPU profiling: cpu profiling already in use');
    this.cpuBusy = true;
    const session = new Session();
    session.connect();
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      session.post('Profiler.stop', (err, out) => {
        session.disconnect();
        this.cpuBusy = false;
        if (res.destroyed) return;
        if (err) return text(res, 500, `Could not take the CPU profile: ${err.message}`);
        const body = JSON.stringify(out.profile);
        res.writeHead(200, {
          'Content-Type': 'application/json',
          'Content-Disposition': 'attachment; filename="profile.cpuprofile"',
          'Content-Length': Buffer.byteLength(body),
        });
        res.end(body);
      });
    };
    // The client gave up: stop now rather than profile for nobody (from the start: it may go before the
    // profiler is running; the session's end then ends it).
    res.on('close', stop);
    session.post('Profiler.enable', (err) => {
      if (stopped) return;
      if (err) return failStart(err);
      session.post('Profiler.start', (err2) => {
        if (stopped) return;
        if (err2) return failStart(err2);
        this.log('info', 'started CPU profile', { seconds });
        timer = setTimeout(stop, seconds * 1000);
      });
    });
    const failStart = (err: Error) => {
      stopped = true;
      session.disconnect();
      this.cpuBusy = false;
      text(res, 500, `Could not enable CPU profiling: ${err.message}`);
    };
  }

  private heapSnapshot(res: ServerResponse): void {
    if (this.heapBusy) return text(res, 500, 'a heap snapshot is already being taken');
    this.heapBusy = true;
    this.log('info', 'taking a heap snapshot');
    let snapshot: ReturnType<typeof getHeapSnapshot>;
    try {
      snapshot = getHeapSnapshot();
    } catch (err) {
      this.heapBusy = false;
      return text(res, 500, `Could not take a heap snapshot: ${(err as Error).message}`);
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="heap.heapsnapshot"' });
    // pipe: serialised only as fast as the client reads it.
    snapshot.pipe(res);
    const done = () => {
      this.heapBusy = false;
      snapshot.destroy();
    };
    res.on('close', done);
    snapshot.on('error', (err) => {
      this.log('warn', 'heap snapshot failed', { error: err.message });
      res.destroy(err);
    });
  }
}
