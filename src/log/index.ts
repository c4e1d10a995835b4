import { openSync, writeSync } from 'node:fs';
import pino from 'pino';

// The server's one logger, made once by the CLI from --logger, --log-level and --log-outputs and injected
// into every layer (each module gets a Log that names it). Lines are written as etcd 3.4's zap logger
// writes them (--logger zap): one JSON object per line, keys in zap's order,
//   {"level":"info","ts":"2026-12-06T06:29:31.636Z","caller":"raft/driver.ts","msg":"raft.node: …","term":2}
// level as zap names it, ts in zap's ISO8601 form (local time, milliseconds, Z or ±hhmm), caller the
// module that logs (etcd's is "package/file.go:line"; ours is the module path, without a line number, so
// no stack is captured per line), msg, then the fields as given. With --logger capnslog, capnslog's text
// lines instead ("2026-12-06 06:29:41.966558 I | server/etcd-server: msg, field: value").
//
// pino writes zap's shape and owns the outputs (its sonic-boom destinations): writes are asynchronous
// (no sync I/O on the event loop while serving); flush() resolves once every line given so far is
// written, for the CLI to await before the process exits (pino's destinations also write out what they
// still hold at process exit, a last resort: a write already under way may then land after it).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
/** One module's logger: a message (etcd's words where etcd logs the event) and structured fields. */
export type Log = (level: LogLevel, msg: string, fields?: LogFields) => void;

export interface Logger {
  /** The Log of one module; `caller` names it in every line (e.g. "server/etcd-server.ts"). */
  module(caller: string): Log;
  /** A "fatal" line (the process stops after it: await flush() first). */
  fatal(caller: string, msg: string, fields?: LogFields): void;
  /** Whether lines at this level are written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  /** Resolves once every line given so far is written (or after timeoutMs, 2 s by default). */
  flush(timeoutMs?: number): Promise<void>;
}

export interface LoggerOptions {
  /** etcd's --logger: 'zap' (JSON lines) or 'capnslog' (text lines). */
  logger: 'zap' | 'capnslog';
  /** etcd's --log-level. */
  level: 'debug' | 'info' | 'warn' | 'error';
  /** etcd's --log-outputs: 'default' or 'stderr' (stderr), 'stdout', or file paths (appended to). */
  outputs: readonly string[];
}

const LEVEL_VALUE: Record<LogLevel | 'fatal', number> = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** zap's ISO8601TimeEncoder: local time with milliseconds and the zone as Z or ±hhmm. */
export function zapTime(d: Date = new Date()): string {
  const off = -d.getTimezoneOffset();
  if (off === 0) return d.toISOString();
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 23);
  const a = Math.abs(off);
  return `${local}${off > 0 ? '+' : '-'}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

/** capnslog's time: local, "2006-01-02 15:04:05.000000". */
export function capnslogTime(): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const d = new Date(Math.floor(us / 1000));
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString();
  return `${local.slice(0, 10)} ${local.slice(11, 19)}.${String(us % 1_000_000).padStart(6, '0')}`;
}

/** Values as zap writes them: bigints (ids) as decimal strings, errors as their message. */
function plain(fields: LogFields): LogFields {
  let out: LogFields | undefined;
  for (const k in fields) {
    const v = fields[k];
    if (typeof v === 'bigint' || v instanceof Error) {
      out ??= { ...fields };
      out[k] = typeof v === 'bigint' ? v.toString() : v.message;
    }
  }
  return out ?? fields;
}

/** The outputs of --log-outputs, opened now (a path that cannot be opened fails the start, as etcd's). */
function openOutputs(outputs: readonly string[]): pino.DestinationStream[] {
  const fds = new Set<number>();
  const paths = new Set<string>();
  for (const o of outputs.length ? outputs : ['default']) {
    if (o === 'default' || o === 'stderr') fds.add(2);
    else if (o === 'stdout') fds.add(1);
    else paths.add(o);
  }
  for (const p of paths) {
    try {
      fds.add(openSync(p, 'a'));
    } catch (err) {
      throw new Error(`cannot open log output ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return [...fds].map(openDestination);
}

/**
 * Lines waiting for one output, at most: past it new lines are dropped (counted in droppedLogBytes), so a
 * stalled stderr pipe or a slow disk cannot grow the process without bound.
 */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** Bytes of log lines dropped because an output was full or failed (see MAX_BUFFERED_BYTES). */
export let droppedLogBytes = 0;

function openDestination(fd: number): pino.DestinationStream {
  // sync: false: each write is handed to libuv, the event loop does not wait for it.
  const d = pino.destination({ dest: fd, sync: false, maxLength: MAX_BUFFERED_BYTES }) as pino.DestinationStream & {
    flushSync: () => void;
    write: (s: string) => boolean;
    on(ev: string, fn: (x: any) => void): void;
  };
  // The exit hook pino registers runs sonic-boom's flushSync, which retries a failing write forever
  // (ENOSPC, EIO, a pipe nobody reads): the process would hang at exit, holding its ports. The CLI
  // awaits flush() (bounded) before every exit instead; what is still queued after it is lost.
  d.flushSync = () => {};
  d.on('drop', (data: string) => void (droppedLogBytes += Buffer.byteLength(data)));
  // A write that failed (pino itself only swallows EPIPE): this output is given up, said once on fd 2,
  // rather than an uncaught exception ending the member.
  let failed = false;
  d.on('error', (err: NodeJS.ErrnoException) => {
    if (failed) return;
    failed = true;
    d.write = (s: string) => {
      droppedLogBytes += Buffer.byteLength(s);
      return true;
    };
    try {
      if (fd !== 2) writeSync(2, `plinth: log output (fd ${fd}) failed: ${err.code ?? err.message}; lines to it are dropped from now on\n`);
    } catch {
      // stderr is gone too: nothing more to say.
    }
  });
  return d;
}

/** The logger of --logger, --log-level, --log-outputs. Throws if an output file cannot be opened. */
export function createLogger(o: LoggerOptions): Logger {
  const dests = openOutputs(o.outputs);
  return o.logger === 'capnslog' ? new CapnslogLogger(o.level, dests) : new ZapLogger(o.level, dests);
}

class ZapLogger implements Logger {
  private readonly root: pino.Logger;
  private readonly modules = new Map<string, Log>();
  private readonly min: number;

  constructor(
    level: LoggerOptions['level'],
    private readonly dests: pino.DestinationStream[],
  ) {
    this.min = LEVEL_VALUE[level];
    const stream = dests.length === 1 ? dests[0] : pino.multistream(dests.map((d) => ({ stream: d, level: 'trace' as const })));
    this.root = pino(
      {
        level,
        base: null,
        messageKey: 'msg',
        timestamp: () => `,"ts":"${zapTime()}"`,
        formatters: { level: (label) => ({ level: label }) },
      },
      stream,
    );
  }

  module(caller: string): Log {
    let log = this.modules.get(caller);
    if (!log) {
      // pino writes level, ts, the child's bindings (caller), then the object's keys in order (msg first).
      const child = this.root.child({ caller });
      log = (level, msg, fields) => {
        if (LEVEL_VALUE[level] < this.min) return;
        child[level](fields ? { msg, ...plain(fields) } : { msg });
      };
      this.modules.set(caller, log);
    }
    return log;
  }

  fatal(caller: string, msg: string, fields?: LogFields): void {
    this.root.child({ caller }).fatal(fields ? { msg, ...plain(fields) } : { msg });
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_VALUE[level] >= this.min;
  }

  flush(timeoutMs?: number): Promise<void> {
    return flushAll(this.dests, timeoutMs);
  }
}

type Boom = pino.DestinationStream & { _writing?: boolean; destroyed?: boolean; once(ev: string, fn: () => void): void; off(ev: string, fn: () => void): void };

/**
 * Waits until the destinations have written all they hold: a sonic-boom destination writing
 * asynchronously ends a run of writes with 'drain'. (Its flushSync would write what is queued before
 * the write under way completes, out of order.)
 */
async function flushAll(dests: pino.DestinationStream[], timeoutMs = 2000): Promise<void> {
  await Promise.all(
    dests.map((d) => {
      const b = d as Boom;
      if (!b._writing || b.destroyed) return undefined;
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          b.off('drain', done);
          b.off('error', done);
          resolve();
        };
        const t = setTimeout(done, timeoutMs);
        b.once('drain', done);
        b.once('error', done);
      });
    }),
  );
}

const CAPNSLOG_LEVEL: Record<LogLevel | 'fatal', string> = { debug: 'D', info: 'I', warn: 'W', error: 'E', fatal: 'C' };

function capnslogValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(capnslogValue).join(',');
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return v.message;
  return JSON.stringify(v) ?? String(v);
}

/** etcd 3.4's --logger capnslog: "2006-01-02 15:04:05.000000 I | pkg: msg, field: value, …". */
class CapnslogLogger implements Logger {
  private readonly min: number;
  constructor(
    level: LoggerOptions['level'],
    private readonly dests: pino.DestinationStream[],
  ) {
    this.min = LEVEL_VALUE[level];
  }

  module(caller: string): Log {
    return (level, msg, fields) => this.write(level, caller, msg, fields);
  }

  fatal(caller: string, msg: string, fields?: LogFields): void {
    this.write('fatal', caller, msg, fields);
  }

  private write(level: LogLevel | 'fatal', caller: string, msg: string, fields: LogFields | undefined): void {
    if (LEVEL_VALUE[level] < this.min) return;
    let text = msg;
    if (fields) for (const k in fields) if (fields[k] !== undefined) text += `, ${k}: ${capnslogValue(fields[k])}`;
    const line = `${capnslogTime()} ${CAPNSLOG_LEVEL[level]} | ${caller.replace(/\.[jt]s$/, '')}: ${text}\n`;
    for (const d of this.dests) d.write(line);
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_VALUE[level] >= this.min;
  }

  flush(timeoutMs?: number): Promise<void> {
    return flushAll(this.dests, timeoutMs);
  }
}

/** A logger that writes nothing (a server opened without one: tests, tools). */
export const silentLogger: Logger = { module: () => () => {}, fatal: () => {}, enabled: () => false, flush: async () => {} };

export interface LogRecord {
  level: LogLevel | 'fatal';
  caller: string;
  msg: string;
  fields: LogFields;
}

/** A logger that keeps its records in memory (tests). */
export function memoryLogger(level: LogLevel = 'debug'): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const min = LEVEL_VALUE[level];
  return {
    records,
    module: (caller) => (lvl, msg, fields) => {
      if (LEVEL_VALUE[lvl] >= min) records.push({ level: lvl, caller, msg, fields: fields ? plain(fields) : {} });
    },
    fatal: (caller, msg, fields) => void records.push({ level: 'fatal', caller, msg, fields: fields ? plain(fields) : {} }),
    enabled: (lvl) => LEVEL_VALUE[lvl] >= min,
    flush: async () => {},
  };
}
