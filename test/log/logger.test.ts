import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { droppedLogBytes, createLogger, memoryLogger, zapTime } from '../../src/log';

// The logger module (src/log): etcd 3.4's zap lines on pino, --log-level, --log-outputs, capnslog text.

const dir = mkdtempSync(join(tmpdir(), 'plinth-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `out-${n++}.log`);
const readLines = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '');

// zap's ISO8601 time: milliseconds, then Z or the local zone as ±hhmm.
const ZAP_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$/;

describe('zap lines', () => {
  it('one JSON object per line: level, ts, caller, msg, then the fields in order, as zap writes them', async () => {
    const f = file();
    const logger = createLogger({ logger: 'zap', level: 'info', outputs: [f] });
    const log = logger.module('server/etcd-server.ts');
    log('info', 'published local member to cluster through raft', { 'local-member-id': '8e9e05c52164694d', 'client-urls': ['http://127.0.0.1:2379'], n: 3, id: 12n, error: new Error('boom') });
    log('warn', 'alarm raised');
    await logger.flush();
    const lines = readLines(f).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(Object.keys(lines[0])).toEqual(['level', 'ts', 'caller', 'msg', 'local-member-id', 'client-urls', 'n', 'id', 'error']);
    expect(lines[0]).toMatchObject({ level: 'info', caller: 'server/etcd-server.ts', msg: 'published local member to cluster through raft', 'client-urls': ['http://127.0.0.1:2379'], n: 3, id: '12', error: 'boom' });
    expect(lines[0].ts).toMatch(ZAP_TS);
    expect(Object.keys(lines[1])).toEqual(['level', 'ts', 'caller', 'msg']);
    expect(lines[1].level).toBe('warn');
  });

  it('--log-level filters: at warn, debug and info lines are dropped', async () => {
    const f = file();
    const logger = createLogger({ logger: 'zap', level: 'warn', outputs: [f] });
    const log = logger.module('m.ts');
    for (const level of ['debug', 'info', 'warn', 'error'] as const) log(level, `at ${level}`);
    logger.fatal('m.ts', 'at fatal', { error: 'x' });
    await logger.flush();
    expect(readLines(f).map((l) => JSON.parse(l)).map((l) => [l.level, l.msg])).toEqual([['warn', 'at warn'], ['error', 'at error'], ['fatal', 'at fatal']]);
    expect(logger.enabled('info')).toBe(false);
    expect(logger.enabled('error')).toBe(true);
  });

  it('writes asynchronously; flush() resolves once every line is written, in order', async () => {
    const f = file();
    const logger = createLogger({ logger: 'zap', level: 'info', outputs: [f] });
    const log = logger.module('m.ts');
    for (let i = 0; i < 2000; i++) log('info', `line ${i}`, { i, pad: 'x'.repeat(100) });
    logger.fatal('cli/main.ts', 'failed to start etcd', { error: 'cannot listen' });
    await logger.flush();
    const msgs = readLines(f).map((l) => JSON.parse(l).msg);
    expect(msgs).toHaveLength(2001);
    expect(msgs.slice(0, 3)).toEqual(['line 0', 'line 1', 'line 2']);
    expect(msgs[2000]).toBe('failed to start etcd');
  });

  it('writes to every output of --log-outputs; a file is appended to', async () => {
    const [a, b] = [file(), file()];
    const first = createLogger({ logger: 'zap', level: 'info', outputs: [a] });
    first.module('m.ts')('info', 'one');
    await first.flush();
    const both = createLogger({ logger: 'zap', level: 'info', outputs: [a, b, a] });
    both.module('m.ts')('info', 'two');
    await both.flush();
    expect(readLines(a).map((l) => JSON.parse(l).msg)).toEqual(['one', 'two']);
    expect(readLines(b).map((l) => JSON.parse(l).msg)).toEqual(['two']);
  });

  it('an output that cannot be opened is refused when the logger is made', () => {
    expect(() => createLogger({ logger: 'zap', level: 'info', outputs: [join(dir, 'no', 'such', 'dir', 'x.log')] })).toThrow(/cannot open log output .*x\.log: ENOENT/);
  });

  it('zap time: UTC as Z', () => {
    const d = new Date(Date.UTC(2026, 11, 6, 6, 29, 31, 418));
    if (d.getTimezoneOffset() === 0) expect(zapTime(d)).toBe('2026-12-06T06:29:31.418Z');
    expect(zapTime(d)).toMatch(ZAP_TS);
  });
});

describe('capnslog lines (--logger capnslog)', () => {
  it('"date time.micro L | package: msg, field: value"', async () => {
    const f = file();
    const logger = createLogger({ logger: 'capnslog', level: 'info', outputs: [f] });
    const log = logger.module('server/applier.ts');
    log('warn', 'alarm raised', { alarm: 'NOSPACE', from: '8e9e05c52164694d' });
    log('info', 'configuring client listeners', { 'listen-client-urls': ['http://a:1', 'http://b:2'] });
    log('debug', 'dropped');
    logger.fatal('cli/main.ts', 'failed to start etcd', { error: 'x' });
    await logger.flush();
    expect(readLines(f).map((l) => l.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} /, ''))).toEqual([
      'W | server/applier: alarm raised, alarm: NOSPACE, from: 8e9e05c52164694d',
      'I | server/applier: configuring client listeners, listen-client-urls: http://a:1,http://b:2',
      'C | cli/main: failed to start etcd, error: x',
    ]);
  });
});

describe('memoryLogger (tests)', () => {
  it('keeps records with their caller and fields', () => {
    const m = memoryLogger('info');
    m.module('raft/driver.ts')('info', 'raft.node: 1 elected leader 1 at term 2');
    m.module('raft/driver.ts')('debug', 'dropped');
    expect(m.records).toEqual([{ level: 'info', caller: 'raft/driver.ts', msg: 'raft.node: 1 elected leader 1 at term 2', fields: {} }]);
  });
});

describe('an output that fails', () => {
  it.skipIf(!existsSync('/dev/full'))('is given up (ENOSPC on /dev/full) without an uncaught error; flush() still settles', async () => {
    const l = createLogger({ logger: 'zap', level: 'info', outputs: ['/dev/full'] });
    const log = l.module('test');
    for (let i = 0; i < 100; i++) log('info', 'line', { i });
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 100; i++) log('info', 'after the failure', { i });
    const t0 = Date.now();
    await l.flush(1000);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(droppedLogBytes).toBeGreaterThan(0); // the lines after the failure
  });
});
