// Command-line flags as etcd's Go tools take them (cobra/pflag): `--name=value` or `--name value`, booleans
// as `--name` or `--name=true|false`, lists comma-separated, durations as Go writes them (`100ms`, `1m30s`).
// Global flags may stand before or after the subcommand, as cobra's persistent flags do. Pure; unit-tested
// in test/bench/flags.test.ts.

export type FlagType = 'int' | 'float' | 'string' | 'bool' | 'list' | 'duration';
export type FlagValue = number | string | boolean | string[];

export interface FlagSpec {
  type: FlagType;
  default: FlagValue;
  help: string;
}
export type FlagSpecs = Record<string, FlagSpec>;

export interface CommandSpec {
  /** Usage of the positional arguments, e.g. 'key [end-range]'. */
  args: string;
  minArgs: number;
  maxArgs: number;
  flags: FlagSpecs;
  help: string;
}

export class FlagError extends Error {}

export interface Parsed {
  command: string;
  positionals: string[];
  flags: Record<string, FlagValue>;
  /** Names given explicitly on the command line (not defaults). */
  given: Set<string>;
}

/** Go's time.ParseDuration for the units the tools use; returns milliseconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while (pos < t.length && (re.lastIndex = pos, (m = re.exec(t)))) {
    total += Number(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  if (pos !== t.length || t.length === 0) throw new FlagError(`invalid duration ${JSON.stringify(s)}`);
  return total;
}

function convert(name: string, spec: FlagSpec, raw: string): FlagValue {
  switch (spec.type) {
    case 'int': {
      if (!/^[+-]?\d+$/.test(raw)) throw new FlagError(`invalid argument ${JSON.stringify(raw)} for --${name}: not an integer`);
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw new FlagError(`invalid argument ${JSON.stringify(raw)} for --${name}: out of range`);
      return v;
    }
    case 'float': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new FlagError(`invalid argument ${JSON.stringify(raw)} for --${name}: not a number`);
      return v;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new FlagError(`invalid argument ${JSON.stringify(raw)} for --${name}: not a boolean`);
    case 'list':
      return raw.split(',').map((x) => x.trim()).filter(Boolean);
    case 'duration':
      try {
        return parseDuration(raw);
      } catch {
        throw new FlagError(`invalid argument ${JSON.stringify(raw)} for --${name}: not a duration`);
      }
    case 'string':
      return raw;
  }
}

/**
 * Parses argv against global flags and, once the first positional names it, that command's flags.
 * With no commands (an empty record) every positional is an argument and there is no command.
 */
export function parseCommandLine(argv: readonly string[], global: FlagSpecs, commands: Record<string, CommandSpec> = {}): Parsed {
  const hasCommands = Object.keys(commands).length > 0;
  // Flag names have one type across all commands here, so the union tells whether a flag takes the next token.
  const union: FlagSpecs = { ...global };
  for (const c of Object.values(commands)) Object.assign(union, c.flags);
  const rawFlags: [string, string | undefined][] = [];
  const positionals: string[] = [];
  let command = '';
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (onlyPositionals || !a.startsWith('-') || a === '-') {
      if (hasCommands && !command) {
        if (!(a in commands)) throw new FlagError(`unknown command ${JSON.stringify(a)}; commands: ${Object.keys(commands).join(', ')}`);
        command = a;
      } else positionals.push(a);
      continue;
    }
    if (a === '--') {
      onlyPositionals = true;
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === 'h' || name === 'help') {
      rawFlags.push(['help', 'true']);
      continue;
    }
    const spec = union[name];
    if (!spec) throw new FlagError(`unknown flag: --${name}`);
    if (eq >= 0) rawFlags.push([name, body.slice(eq + 1)]);
    else if (spec.type === 'bool') rawFlags.push([name, 'true']);
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: --${name}`);
      rawFlags.push([name, argv[++i]]);
    }
  }
  const allowed: FlagSpecs = { ...global, ...(command ? commands[command].flags : {}) };
  const flags: Record<string, FlagValue> = {};
  for (const [n, s] of Object.entries(allowed)) flags[n] = Array.isArray(s.default) ? [...s.default] : s.default;
  const given = new Set<string>();
  for (const [name, raw] of rawFlags) {
    if (name === 'help') {
      flags.help = true;
      given.add('help');
      continue;
    }
    const spec = allowed[name];
    if (!spec) throw new FlagError(`unknown flag: --${name}${command ? ` (for ${command})` : ''}`);
    flags[name] = convert(name, spec, raw as string);
    given.add(name);
  }
  if (flags.help) return { command, positionals, flags, given };
  if (hasCommands) {
    if (!command) throw new FlagError(`no command given; commands: ${Object.keys(commands).join(', ')}`);
    const c = commands[command];
    if (positionals.length < c.minArgs || positionals.length > c.maxArgs) {
      throw new FlagError(`${command} takes ${c.args || 'no arguments'} (got ${positionals.length} argument(s))`);
    }
  }
  return { command, positionals, flags, given };
}

/** Help text for a flag set, pflag-style. */
export function flagUsage(specs: FlagSpecs): string {
  return Object.entries(specs)
    .map(([n, s]) => {
      const t = s.type === 'bool' ? '' : ` ${s.type}`;
      const d = s.default === '' || s.default === false || (Array.isArray(s.default) && !s.default.length) ? '' : ` (default ${Array.isArray(s.default) ? s.default.join(',') : s.default})`;
      return `      --${n}${t}`.padEnd(36) + ` ${s.help}${d}`;
    })
    .join('\n');
}
