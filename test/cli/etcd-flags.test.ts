import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FLAGS, envName, parseArgs, usage, UsageError, type Command } from '../../src/cli/flags';
import { ETCD_AVAILABLE } from '../helpers/servers';

// etcd 3.4's whole command line (issue #17): every flag of `etcd --help` is in `plinth --help` and taken at
// etcd's default, as a flag and as its ETCD_* variable; flags for what Plinth does not serve are refused
// at any other value with one line.

/** `etcd --help`'s flags and the defaults it prints (`  --name 'default'`, `  --bcrypt-cost 10`). */
function etcdHelpFlags(): Array<{ name: string; def: string }> {
  // etcd prints its usage lines (--config-file among them) on stderr, the flags on stdout.
  const r = spawnSync('etcd', ['--help'], { encoding: 'utf8' });
  const help = r.stderr + r.stdout;
  const out: Array<{ name: string; def: string }> = [];
  const seen = new Set<string>();
  for (const line of help.split('\n')) {
    const m = /^ {2}(?:etcd )?--([a-z0-9-]+)(?: (?:'(.*)'|(\S+)))?$/.exec(line);
    if (!m || m[1] === 'version' || m[1] === 'help' || seen.has(m[1])) continue;
    seen.add(m[1]);
    out.push({ name: m[1], def: m[2] ?? m[3] ?? '' });
  }
  return out;
}

/** What a default as etcd's help prints it means as a value of the flag. */
const asValue = (def: string) => (def === 'math.MaxUint32' ? '4294967295' : def);

const serve = (c: Command) => {
  if (c.kind !== 'serve') throw new Error(`not serve: ${c.kind}`);
  return c;
};

describe.skipIf(!ETCD_AVAILABLE)("etcd 3.4's flags (from `etcd --help`)", () => {
  const flags = ETCD_AVAILABLE ? etcdHelpFlags() : [];

  it('finds them all in etcd --help', () => {
    // 3.4.23's help names 80 (--config-file among them); a parse that finds few would make the checks below vacuous.
    expect(flags.length).toBeGreaterThanOrEqual(78);
    expect(flags.map((f) => f.name)).toEqual(expect.arrayContaining(['name', 'config-file', 'proxy-read-timeout', 'log-package-levels', 'force-new-cluster']));
  });

  it('each is in plinth --help, with etcd\'s env variable', () => {
    const help = usage();
    const missing = flags.filter((f) => !new RegExp(`^ {2}--${f.name} '`, 'm').test(help));
    expect(missing.map((f) => f.name)).toEqual([]);
    for (const f of flags) expect(help).toContain(`env ETCD_${f.name.toUpperCase().replace(/-/g, '_')}]`);
  });

  it("each is accepted at etcd's default, as a flag and from ETCD_<NAME>", () => {
    const refusedAtDefault: string[] = [];
    for (const f of flags) {
      for (const attempt of [() => parseArgs([`--${f.name}=${asValue(f.def)}`]), () => parseArgs([], { [`ETCD_${f.name.toUpperCase().replace(/-/g, '_')}`]: asValue(f.def) })]) {
        try {
          serve(attempt());
        } catch (err) {
          refusedAtDefault.push(`--${f.name}=${f.def}: ${(err as Error).message}`);
        }
      }
    }
    expect(refusedAtDefault).toEqual([]);
  });

  it("shows etcd's default for each, or says what etcd's is", () => {
    const help = usage();
    for (const f of flags) {
      const spec = FLAGS.find((s) => s.name === f.name)!;
      expect([spec.def, spec.etcdDef], f.name).toContain(f.def === '' && spec.type === 'duration' ? '' : f.def);
      if (spec.etcdDef !== undefined) expect(help).toContain(`etcd 3.4's default: '${spec.etcdDef}'`);
    }
  });

  it("the flags etcd's config.go takes beyond its help are there too", () => {
    for (const name of ['enable-grpc-gateway', 'log-output', 'experimental-enable-lease-checkpoint-persist', 'unsafe-no-fsync']) {
      expect(FLAGS.some((f) => f.name === name && f.etcd), name).toBe(true);
    }
  });
});

describe('refused flags: accepted at the default, one line at any other value', () => {
  const cases: Array<[string[], string]> = [
    [['--enable-v2'], "--enable-v2=true: Plinth serves only the v3 API, not the v2 API (accepted only at its default, 'false')"],
    [['--experimental-enable-v2v3=/v2'], "--experimental-enable-v2v3=/v2: Plinth serves only the v3 API, not the v2 API (accepted only at its default, '')"],
    [['--proxy', 'on'], "--proxy=on: Plinth does not run as a v2 proxy; it is always a member (accepted only at its default, 'off')"],
    [['--proxy-read-timeout=10'], "--proxy-read-timeout=10: Plinth does not run as a v2 proxy; it is always a member (accepted only at its default, '0')"],
    [['--proxy-failure-wait=1'], "--proxy-failure-wait=1: Plinth does not run as a v2 proxy; it is always a member (accepted only at its default, '5000')"],
    [['--discovery', 'https://discovery.etcd.io/abc'], "--discovery=https://discovery.etcd.io/abc: Plinth does not bootstrap through a discovery service or DNS SRV records yet; list the members in --initial-cluster (accepted only at its default, '')"],
    [['--discovery-srv=example.com'], "--discovery-srv=example.com: Plinth does not bootstrap through a discovery service or DNS SRV records yet; list the members in --initial-cluster (accepted only at its default, '')"],
    [['--discovery-srv-name=x'], "--discovery-srv-name=x: Plinth does not bootstrap through a discovery service or DNS SRV records yet; list the members in --initial-cluster (accepted only at its default, '')"],
    [['--discovery-proxy=http://p:1'], "--discovery-proxy=http://p:1: Plinth does not bootstrap through a discovery service or DNS SRV records yet; list the members in --initial-cluster (accepted only at its default, '')"],
    [['--discovery-fallback=maybe'], "--discovery-fallback=maybe: Plinth does not use a discovery service; its values are 'proxy' and 'exit' (accepted only at its default, 'proxy')"],
    [['--force-new-cluster'], "--force-new-cluster=true: Plinth does not support --force-new-cluster yet; to recover, restore a snapshot with 'plinth snapshot restore' into a new cluster (accepted only at its default, 'false')"],
    [['--max-wals=0'], "--max-wals=0: Plinth does not support WAL file retention yet: it deletes WAL segments as soon as the backend holds their entries durably (accepted only at its default, '5')"],
    [['--experimental-corrupt-check-time=1m'], "--experimental-corrupt-check-time=1m: Plinth does not run periodic corruption checks (hash comparisons raising the CORRUPT alarm) yet (accepted only at its default, '0s')"],
    [['--cors=https://a.example'], "--cors=https://a.example: Plinth answers every origin (Access-Control-Allow-Origin: *); a list of origins is not supported yet (accepted only at its default, '*')"],
    [['--host-whitelist=a.example'], "--host-whitelist=a.example: Plinth accepts every Host header; a list of hostnames is not supported yet (accepted only at its default, '*')"],
    [['--config-file', '/etc/etcd.yaml'], "--config-file=/etc/etcd.yaml: Plinth does not read configuration files yet; give the flags, or their ETCD_* environment variables (accepted only at its default, '')"],
    [['--enable-grpc-gateway=false'], "--enable-grpc-gateway=false: Plinth always serves the gRPC gateway (JSON over HTTP) on its client URLs; turning it off is not supported yet (accepted only at its default, 'true')"],
  ];
  it.each(cases)('%j', (argv, message) => {
    let err: unknown;
    try {
      parseArgs(argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(message);
    expect(message).not.toContain('\n');
  });

  it('refuses from the environment too, and takes the default spelled another way', () => {
    expect(() => parseArgs([], { ETCD_ENABLE_V2: 'true' })).toThrow('--enable-v2=true: Plinth serves only the v3 API');
    expect(() => parseArgs([], { ETCD_FORCE_NEW_CLUSTER: '1' })).toThrow('--force-new-cluster=1:');
    for (const argv of [['--enable-v2=0'], ['--proxy-dial-timeout', '1000'], ['--experimental-corrupt-check-time=0'], ['--discovery-fallback=exit'], ['--cors='], ['--cors=*'], ['--host-whitelist='], ['--enable-grpc-gateway'], ['--max-wals=5']]) {
      expect(() => parseArgs(argv), argv.join(' ')).not.toThrow();
    }
  });
});

describe('flags stored or wired for other parts (logging, metrics, pprof, corruption check)', () => {
  it("have etcd's defaults (logger: Plinth's zap, where etcd 3.4's is capnslog)", () => {
    const { config: c, warnings } = serve(parseArgs([]));
    expect(c).toMatchObject({
      logger: 'zap', logOutputs: ['default'], logLevel: 'info', metrics: 'basic', listenMetricsUrls: [], enablePprof: false,
      initialCorruptCheck: false, initialElectionTickAdvance: true, maxSnapshots: 5, logPackageLevels: '',
    });
    expect(warnings).toEqual([]);
  });

  it('take values as flags and ETCD_* variables', () => {
    const { config: c } = serve(parseArgs([
      '--logger=capnslog', '--log-outputs', 'stdout', '--metrics', 'extensive', '--listen-metrics-urls', 'http://127.0.0.1:2381,https://127.0.0.1:2382',
      '--enable-pprof', '--experimental-initial-corrupt-check=true', '--initial-election-tick-advance=false', '--max-snapshots', '0', '--log-level', 'warn',
    ]));
    expect(c).toMatchObject({ logger: 'capnslog', logOutputs: ['stdout'], metrics: 'extensive', enablePprof: true, initialCorruptCheck: true, initialElectionTickAdvance: false, maxSnapshots: 0, logLevel: 'warn' });
    expect(c.listenMetricsUrls.map(String)).toEqual(['http://127.0.0.1:2381/', 'https://127.0.0.1:2382/']);
    const { config: e } = serve(parseArgs([], {
      ETCD_LOGGER: 'zap', ETCD_LOG_OUTPUTS: 'stderr,/var/log/etcd.log', ETCD_METRICS: 'extensive', ETCD_LISTEN_METRICS_URLS: 'http://127.0.0.1:2381',
      ETCD_ENABLE_PPROF: 'true', ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK: 'true', ETCD_LOG_LEVEL: 'fatal',
    }));
    expect(e).toMatchObject({ logger: 'zap', logOutputs: ['stderr', '/var/log/etcd.log'], metrics: 'extensive', enablePprof: true, initialCorruptCheck: true, logLevel: 'error' });
    expect(e.listenMetricsUrls.map(String)).toEqual(['http://127.0.0.1:2381/']);
    // A flag wins over the environment.
    expect(serve(parseArgs(['--metrics=basic'], { ETCD_METRICS: 'extensive' })).config.metrics).toBe('basic');
  });

  it.each([
    [['--logger=glog'], 'unknown logger option "glog"'],
    [['--metrics=full'], 'invalid value "full" for flag --metrics: want basic or extensive'],
    [['--listen-metrics-urls=unix://x:1'], '--listen-metrics-urls: unix: URLs are not supported (http and https)'],
    [['--listen-metrics-urls=nonsense'], 'invalid value "nonsense" for flag --listen-metrics-urls: not a URL'],
    [['--enable-pprof=maybe'], 'invalid value "maybe" for flag --enable-pprof: not a boolean'],
    [['--log-level=trace'], 'invalid value "trace" for flag --log-level'],
    [['--log-outputs=default,stderr'], 'multi logoutput for "default" is not supported yet'],
    [['--logger=capnslog', '--log-outputs=stderr,stdout'], `--logger=capnslog supports only 1 value in '--log-outputs', got ["stderr" "stdout"]`],
    [['--logger=capnslog', '--log-outputs=/tmp/x.log'], 'unknown log-output "/tmp/x.log" (only supports "default", "stderr", "stdout")'],
    [['--experimental-enable-lease-checkpoint-persist'], 'setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint'],
    [['--max-snapshots=-1'], 'invalid value "-1" for flag --max-snapshots: must be >= 0'],
  ])("refuses %j with etcd's words", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(message);
  });

  it("--debug means --log-level debug, with etcd's warnings; deprecated logging flags warn as etcd's", () => {
    const d = serve(parseArgs(['--debug']));
    expect(d.config.logLevel).toBe('debug');
    expect(d.warnings).toEqual([
      "[WARNING] Deprecated '--debug' flag is set to true (use '--log-level=debug' instead",
      "[WARNING] Deprecated '--debug' flag is set to true with inconsistent '--log-level=info' flag",
    ]);
    expect(serve(parseArgs(['--debug=false'])).config.logLevel).toBe('info');
    const w = serve(parseArgs(['--logger=capnslog', '--log-package-levels=etcdserver=DEBUG', '--log-output=stderr']));
    expect(w.config).toMatchObject({ logPackageLevels: 'etcdserver=DEBUG', logOutputs: ['stderr'] });
    expect(w.warnings).toEqual([
      "'--log-output' flag has been deprecated! Please use '--log-outputs'!",
      "[WARNING] Deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead",
      "[WARNING] Deprecated '--log-package-levels=etcdserver=DEBUG' flag is set; use '--logger=zap' flag instead",
    ]);
    // --log-outputs wins over the old name, whichever comes first.
    expect(serve(parseArgs(['--log-output=stdout', '--log-outputs=stderr'])).config.logOutputs).toEqual(['stderr']);
    expect(serve(parseArgs(['--log-outputs=stderr', '--log-output=stdout'])).config.logOutputs).toEqual(['stderr']);
  });

  it("--experimental-enable-lease-checkpoint-persist is taken with the checkpoint flag; --backend-batch-* take etcd's 0 / '' as the default", () => {
    expect(serve(parseArgs(['--experimental-enable-lease-checkpoint', '--experimental-enable-lease-checkpoint-persist'])).config.leaseCheckpointEnabled).toBe(true);
    const { config: c } = serve(parseArgs(['--backend-batch-limit=0', '--backend-batch-interval=']));
    expect([c.backendBatchLimit, c.backendBatchIntervalMs]).toEqual([10_000, 100]);
  });

  it('every flag has a group, a type, a default and an env variable in --help', () => {
    const help = usage();
    for (const f of FLAGS) {
      expect(help, f.name).toContain(`  --${f.name} '${f.def}'    [${f.type}; env ${envName(f)}]`);
      // Each flag's own default parses.
      expect(() => parseArgs(f.def === '' && f.type === 'urls' ? [] : [`--${f.name}=${f.def}`]), f.name).not.toThrow();
    }
  });
});

describe('URL lists', () => {
  it("count each URL once, as etcd's UniqueURLs (kubeadm names https://127.0.0.1:2379 twice when its IP is 127.0.0.1)", () => {
    const { config: c } = serve(parseArgs(['--listen-client-urls=https://127.0.0.1:2379,https://127.0.0.1:2379', '--listen-metrics-urls=http://127.0.0.1:2381,http://127.0.0.1:2381/']));
    expect(c.listenClientUrls.map(String)).toEqual(['https://127.0.0.1:2379/']);
    expect(c.advertiseClientUrls).toEqual(['https://127.0.0.1:2379']);
    expect(c.listenMetricsUrls.map(String)).toEqual(['http://127.0.0.1:2381/']);
  });
});
