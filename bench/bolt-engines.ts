// bench:bolt-engines — put and range throughput of Plinth's bolt engine (array and map freelist) against
// its lmdb and leveldb engines and real etcd 3.4 (issue #18), with etcd's own Go tool as the load.
//
//   npm run bench:bolt-engines [-- --rounds=2 --put-total=20000 --range-total=30000 --out-dir=bench/results]
//
// Each round starts every server afresh (fresh data dir under a temp dir on the real disk, fsync on,
// loopback) in turn, A B C D E, and runs: put (100 clients / 10 conns, 256 B values, sequential keys) and
// range of one key (serializable, 100 clients). Medians over rounds go to bench/results/bolt-engines.{md,json,svg}.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseGoOutput, pickSection } from './lib/go-output';
import { closeAll, connect, unary } from './lib/load';
import { killAllSync, runChild, type Server, startServer, stopServer } from './lib/servers';
import { encodePut } from './lib/wire';

const ROOT = resolve(__dirname, '..', '..');
const GO_BIN = '/tmp/etcd-benchmark/benchmark';

interface Target {
  id: string;
  kind: 'etcd' | 'plinth';
  backend?: string;
  args?: string[];
}

const TARGETS: Target[] = [
  { id: 'etcd 3.4', kind: 'etcd' },
  { id: 'Plinth lmdb', kind: 'plinth', backend: 'lmdb' },
  { id: 'Plinth leveldb', kind: 'plinth', backend: 'leveldb' },
  { id: 'Plinth bolt (array)', kind: 'plinth', backend: 'bolt' },
  { id: 'Plinth bolt (map)', kind: 'plinth', backend: 'bolt', args: ['--experimental-backend-bbolt-freelist-type', 'map'] },
];

interface Sample {
  target: string;
  workload: 'put' | 'range';
  rps: number;
  p99: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function load(s: Server, args: string[]): Promise<{ rps: number; p99: number }> {
  const r = await runChild(GO_BIN, [`--endpoints=${s.endpoint}`, '--precise', ...args], 180_000);
  const sec = pickSection(parseGoOutput(r.stdout));
  if (r.code !== 0 && sec.count === 0) throw new Error(`Go tool exited ${r.code}: ${r.stderr.slice(-300)}`);
  return { rps: sec.rps, p99: sec.pct['99'] };
}

function svg(rows: { target: string; put: number; range: number }[]): string {
  const W = 720;
  const H = 320;
  const L = 170;
  const T = 40;
  const max = Math.max(...rows.flatMap((r) => [r.put, r.range]));
  const bar = (v: number) => (v / max) * (W - L - 80);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">put and range throughput (req/s, 100 clients, etcd's Go tool; median of rounds)</text>`,
  ];
  rows.forEach((r, i) => {
    const y = T + i * 52;
    parts.push(`<text x="${L - 8}" y="${y + 22}" text-anchor="end">${r.target}</text>`);
    parts.push(`<rect x="${L}" y="${y}" width="${bar(r.put).toFixed(1)}" height="18" fill="#c0392b"/><text x="${L + bar(r.put) + 4}" y="${y + 14}">put ${Math.round(r.put).toLocaleString('en')}</text>`);
    parts.push(`<rect x="${L}" y="${y + 22}" width="${bar(r.range).toFixed(1)}" height="18" fill="#2471a3"/><text x="${L + bar(r.range) + 4}" y="${y + 36}">range ${Math.round(r.range).toLocaleString('en')}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, def: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
  const rounds = Number(opt('rounds', '2'));
  const putTotal = Number(opt('put-total', '20000'));
  const rangeTotal = Number(opt('range-total', '30000'));
  const outDir = resolve(opt('out-dir', join(ROOT, 'bench', 'results')));
  if (!existsSync(GO_BIN)) throw new Error(`${GO_BIN} missing: build it with bash ../shared/tools/build-etcd-benchmark.sh`);
  const baseDir = mkdtempSync('/var/tmp/plinth-bolt-engines-');
  const samples: Sample[] = [];
  const started = Date.now();
  process.on('SIGINT', () => {
    killAllSync();
    process.exit(130);
  });
  try {
    for (let round = 0; round < rounds; round++) {
      for (const t of TARGETS) {
        const s = await startServer(t.kind, { baseDir, root: ROOT, plinthBackend: t.backend, extraArgs: t.args });
        try {
          const put = await load(s, ['--conns=10', '--clients=100', 'put', '--key-size=16', '--val-size=256', '--sequential-keys', '--key-space-size=10000000', `--total=${putTotal}`]);
          const [c] = await connect([s.endpoint], 1, 5000);
          await unary(c, '/etcdserverpb.KV/Put', encodePut(Buffer.from('/bench/range-key'), Buffer.alloc(256, 'v')));
          closeAll([c]);
          const range = await load(s, ['--conns=10', '--clients=100', 'range', '/bench/range-key', '--consistency=s', `--total=${rangeTotal}`]);
          samples.push({ target: t.id, workload: 'put', ...put }, { target: t.id, workload: 'range', ...range });
          process.stderr.write(`round ${round + 1} ${t.id}: put ${put.rps.toFixed(0)}/s p99 ${put.p99} ms; range ${range.rps.toFixed(0)}/s p99 ${range.p99} ms\n`);
        } finally {
          await stopServer(s);
        }
      }
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
  const rows = TARGETS.map((t) => {
    const of = (w: 'put' | 'range', f: 'rps' | 'p99') => median(samples.filter((s) => s.target === t.id && s.workload === w).map((s) => s[f]));
    return { target: t.id, put: of('put', 'rps'), putP99: of('put', 'p99'), range: of('range', 'rps'), rangeP99: of('range', 'p99') };
  });
  const cmd = `npm run bench:bolt-engines -- --rounds=${rounds} --put-total=${putTotal} --range-total=${rangeTotal}`;
  const table = [
    '| server | put req/s | put p99 ms | range req/s | range p99 ms |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.target} | ${Math.round(r.put).toLocaleString('en')} | ${r.putP99.toFixed(1)} | ${Math.round(r.range).toLocaleString('en')} | ${r.rangeP99.toFixed(1)} |`),
  ].join('\n');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'bolt-engines.json'), JSON.stringify({ command: cmd, date: new Date().toISOString(), samples, rows }, null, 2) + '\n');
  writeFileSync(join(outDir, 'bolt-engines.svg'), svg(rows) + '\n');
  writeFileSync(join(outDir, 'bolt-engines.md'), `# bolt vs lmdb, leveldb and etcd 3.4\n\n\`${cmd}\` (${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s). Medians of ${rounds} rounds; fsync on; data on /var/tmp.\n\n${table}\n\n![throughput](bolt-engines.svg)\n`);
  process.stdout.write(table + '\n');
}

main().catch((err) => {
  killAllSync();
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
