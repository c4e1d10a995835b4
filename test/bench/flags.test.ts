import { describe, expect, it } from 'vitest';
import { COMMANDS, GLOBAL_FLAGS } from '../../bench/driver';
import { FlagError, parseCommandLine, parseDuration } from '../../bench/lib/flags';

const parse = (argv: string[]) => parseCommandLine(argv, GLOBAL_FLAGS, COMMANDS);

describe("driver command line (etcd tools/benchmark's flags)", () => {
  it('parses the Go tool\'s put command line, globals before the command', () => {
    const p = parse(['--endpoints=127.0.0.1:1234', '--conns=10', '--clients', '100', 'put', '--key-size=16', '--val-size', '256', '--sequential-keys', '--total=40000']);
    expect(p.command).toBe('put');
    expect(p.flags).toMatchObject({ endpoints: ['127.0.0.1:1234'], conns: 10, clients: 100, 'key-size': 16, 'val-size': 256, 'sequential-keys': true, total: 40000, 'key-space-size': 1, rate: 0 });
    expect(p.given.has('total')).toBe(true);
    expect(p.given.has('rate')).toBe(false);
  });
  it('takes global flags after the command too, and positionals for range', () => {
    const p = parse(['range', 'k', 'z', '--consistency=s', '--clients=5', '--endpoints=a:1,b:2']);
    expect(p.positionals).toEqual(['k', 'z']);
    expect(p.flags).toMatchObject({ consistency: 's', clients: 5, endpoints: ['a:1', 'b:2'] });
  });
  it('reads booleans as --flag, --flag=true and --flag=false', () => {
    expect(parse(['range', 'k', '--prefix=false']).flags.prefix).toBe(false);
    expect(parse(['range', 'k', '--prefix']).flags.prefix).toBe(true);
    expect(parse(['txn-mixed', '--rw-ratio=0.5']).flags['rw-ratio']).toBe(0.5);
  });
  it('reads durations as Go writes them', () => {
    expect(parse(['--max-time=1m30s', 'lease-keepalive']).flags['max-time']).toBe(90_000);
    expect(parseDuration('100ms')).toBe(100);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('0')).toBe(0);
    expect(() => parseDuration('5')).toThrow(FlagError);
    expect(() => parseDuration('1x')).toThrow(FlagError);
  });
  it('refuses unknown commands and flags, flags of another command, bad numbers and arity', () => {
    expect(() => parse(['frobnicate'])).toThrow(/unknown command/);
    expect(() => parse(['put', '--nope=1'])).toThrow(/unknown flag: --nope/);
    expect(() => parse(['put', '--consistency=s'])).toThrow(/unknown flag: --consistency \(for put\)/);
    expect(() => parse(['put', '--total=1e3'])).toThrow(/not an integer/);
    expect(() => parse(['put', '--total'])).toThrow(/needs an argument/);
    expect(() => parse(['range'])).toThrow(/range takes key \[end-range\]/);
    expect(() => parse(['put', 'extra'])).toThrow(/takes no arguments/);
    expect(() => parse(['--conns=2'])).toThrow(/no command/);
  });
  it('answers --help without checking the rest', () => {
    expect(parse(['--help']).flags.help).toBe(true);
    expect(parse(['range', '-h']).flags.help).toBe(true);
  });
  it('gives defaults a fresh copy each time', () => {
    const a = parse(['put']);
    (a.flags.endpoints as string[]).push('x');
    expect(parse(['put']).flags.endpoints).toEqual(['127.0.0.1:2379']);
  });
});
