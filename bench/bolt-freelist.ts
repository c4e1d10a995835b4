// bench:bolt-freelist — the experiment of issue #18 (Alibaba's, CNCF blog 2019): bbolt's array freelist
// against the hashmap freelist as the number of free pages grows, on Plinth's bolt engine.
//
//   npm run bench:bolt-freelist [-- --sizes=10000,100000,1000000,10000000 --commits=200 --out-dir=bench/results]
//
// For each freelist type and size N, a child process opens a bolt database, loads 1000 keys, then turns
// the space past them into a fragmented freelist: N free pages in spans of 1 and 2 pages, each span
// followed by a page in use (as after compactions of a large store; the file is sparse). Then it runs
// --commits commits, each putting 10 keys of 256 B and one of 10 KiB (an overflow value: 3 contiguous
// pages, which no span can give, as a large value or a branch split needs), with NoFreelistSync and no
// fsync (etcd 3.4's setting; fsync off to measure the freelist's CPU, not the disk). Per commit it records:
// the time of its page allocations (freelist.allocate), of releasing the previous commit's pages
// (freelist.release at the start of a write transaction: the array merges into its sorted list), the whole
// commit (the latency of those puts), and the RSS. Results: bench/results/bolt-freelist.{md,json,svg}.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BoltDb } from '../src/storage/bolt/db';
import type { FreelistType } from '../src/storage/bolt/freelist';

interface Result {
  type: FreelistType;
  freePages: number;
  commits: number;
  setupS: number;
  allocUs: { p50: number; p99: number; mean: number };
  releaseUs: { p50: number; p99: number; mean: number };
  commitMs: { p50: number; p99: number; max: number };
  rssMb: number;
  freelistAfter: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1], mean: xs.reduce((a, b) => a + b, 0) / xs.length };
};

async function child(type: FreelistType, n: number, commits: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-freelist-bench-'));
  const t0 = Date.now();
  try {
    const db = await BoltDb.open(join(dir, 'db'), { freelistType: type, noFreelistSync: true, noSync: true });
    let rev = 1;
    const revKey = () => {
      const k = Buffer.alloc(17);
      k.writeBigUInt64BE(BigInt(rev++), 0);
      k[8] = 0x5f;
      return k;
    };
    let tx = await db.beginWrite();
    let b = tx.createBucketIfNotExists(Buffer.from('key'));
    for (let i = 0; i < 1000; i++) b.put(revKey(), Buffer.alloc(256, 1));
    await tx.commit();
    // The fragmented freelist: spans of 1 and 2 free pages, each followed by one page in use.
    tx = await db.beginWrite();
    const ids: number[] = new Array(n);
    let pg = tx.meta.pgid;
    for (let k = 0, span = 0; k < n; span++) {
      for (let j = 0; j < (span % 2) + 1 && k < n; j++) ids[k++] = pg++;
      pg++;
    }
    tx.meta.pgid = pg;
    db.freelist.readIds(ids);
    tx.createBucketIfNotExists(Buffer.from('key')).put(revKey(), Buffer.alloc(256, 2));
    await tx.commit();
    const setupS = (Date.now() - t0) / 1000;
    const alloc: number[] = [];
    const release: number[] = [];
    const commit: number[] = [];
    let rss = 0;
    for (let c = 0; c < commits + 10; c++) {
      const start = process.hrtime.bigint();
      tx = await db.beginWrite();
      const rel = db.lastReleaseNs;
      b = tx.createBucketIfNotExists(Buffer.from('key'));
      for (let i = 0; i < 10; i++) b.put(revKey(), Buffer.alloc(256, c));
      b.put(revKey(), Buffer.alloc(10 * 1024, c));
      await tx.commit();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (c < 10) continue; // warm-up
      alloc.push(tx.stats.allocNs / 1000);
      release.push(rel / 1000);
      commit.push(ms);
      if (c % 20 === 0) rss = Math.max(rss, process.memoryUsage().rss);
    }
    rss = Math.max(rss, process.memoryUsage().rss);
    const a = summary(alloc);
    const r = summary(release);
    const cm = summary(commit);
    const result: Result = {
      type, freePages: n, commits, setupS,
      allocUs: { p50: a.p50, p99: a.p99, mean: a.mean },
      releaseUs: { p50: r.p50, p99: r.p99, mean: r.mean },
      commitMs: { p50: cm.p50, p99: cm.p99, max: cm.max },
      rssMb: rss / 2 ** 20,
      freelistAfter: db.freelist.count(),
    };
    await db.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(type: FreelistType, n: number, commits: number): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, ['--max-old-space-size=16000', __filename, '--child', type, String(n), String(commits)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`child ${type} ${n} exited ${code}`));
      else resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as Result);
    });
  });
}

const f1 = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

function table(results: Result[]): string {
  const lines = [
    '| free pages | freelist | allocation per commit p50 / p99 (µs) | release per commit p50 / p99 (µs) | commit (11 puts) p50 / p99 / max (ms) | RSS (MB) |',
    '|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    lines.push(`| ${label(r.freePages)} | ${r.type} | ${f1(r.allocUs.p50)} / ${f1(r.allocUs.p99)} | ${f1(r.releaseUs.p50)} / ${f1(r.releaseUs.p99)} | ${f1(r.commitMs.p50)} / ${f1(r.commitMs.p99)} / ${f1(r.commitMs.max)} | ${r.rssMb.toFixed(0)} |`);
  }
  return lines.join('\n');
}

/** Log-log lines: allocation + release per commit (p50), and commit p99, against free pages. */
function svg(results: Result[]): string {
  const W = 720;
  const H = 360;
  const L = 70;
  const R = 200;
  const T = 40;
  const B = 50;
  const sizes = [...new Set(results.map((r) => r.freePages))].sort((a, b) => a - b);
  const series: { name: string; color: string; dash: string; pts: [number, number][] }[] = [];
  for (const [type, color] of [['array', '#c0392b'], ['map', '#2471a3']] as const) {
    const rs = results.filter((r) => r.type === type).sort((a, b) => a.freePages - b.freePages);
    series.push({ name: `${type}: alloc+release p50`, color, dash: '', pts: rs.map((r) => [r.freePages, (r.allocUs.p50 + r.releaseUs.p50) / 1000]) });
    series.push({ name: `${type}: commit p99`, color, dash: '6 4', pts: rs.map((r) => [r.freePages, r.commitMs.p99]) });
  }
  const ys = series.flatMap((s) => s.pts.map((p) => p[1])).filter((y) => y > 0);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
  const xMin = sizes[0];
  const xMax = sizes[sizes.length - 1];
  const x = (v: number) => L + ((Math.log10(v) - Math.log10(xMin)) / Math.max(1e-9, Math.log10(xMax) - Math.log10(xMin))) * (W - L - R);
  const y = (v: number) => T + (1 - (Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="14" font-weight="bold">bolt freelist: array vs map as free pages grow (ms per commit, log-log)</text>`,
  ];
  for (let d = yMin; d <= yMax; d *= 10) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(d)}" y2="${y(d)}" stroke="#ddd"/><text x="${L - 6}" y="${y(d) + 4}" text-anchor="end">${d >= 1 ? d : d.toPrecision(1)}</text>`);
  }
  for (const s of sizes) parts.push(`<line x1="${x(s)}" x2="${x(s)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${x(s)}" y="${H - B + 16}" text-anchor="middle">${label(s)}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">free pages on the freelist (spans of 1–2 pages)</text>`);
  parts.push(`<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">ms</text>`);
  series.forEach((s, i) => {
    const d = s.pts.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const p of s.pts) parts.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = T + 10 + i * 20;
    parts.push(`<line x1="${W - R + 12}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/><text x="${W - R + 46}" y="${ly + 4}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const r = await child(argv[1] as FreelistType, Number(argv[2]), Number(argv[3]));
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const opt = (name: string, def: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
  const quick = argv.includes('--quick');
  const sizes = opt('sizes', quick ? '10000,100000' : '10000,100000,1000000,10000000').split(',').map(Number);
  const commits = Number(opt('commits', quick ? '50' : '200'));
  const outDir = resolve(opt('out-dir', join(__dirname, '..', '..', 'bench', 'results')));
  const results: Result[] = [];
  const started = Date.now();
  for (const n of sizes) {
    for (const type of ['array', 'map'] as const) {
      const r = await runChild(type, n, commits);
      process.stderr.write(`${type} ${label(n)}: alloc p50 ${f1(r.allocUs.p50)} µs, release p50 ${f1(r.releaseUs.p50)} µs, commit p99 ${f1(r.commitMs.p99)} ms, RSS ${r.rssMb.toFixed(0)} MB\n`);
      results.push(r);
    }
  }
  mkdirSync(outDir, { recursive: true });
  const cmd = `npm run bench:bolt-freelist -- --sizes=${sizes.join(',')} --commits=${commits}`;
  writeFileSync(join(outDir, 'bolt-freelist.json'), JSON.stringify({ command: cmd, date: new Date().toISOString(), seconds: (Date.now() - started) / 1000, results }, null, 2) + '\n');
  writeFileSync(join(outDir, 'bolt-freelist.svg'), svg(results) + '\n');
  writeFileSync(
    join(outDir, 'bolt-freelist.md'),
    `# bolt freelist: array vs map\n\n\`${cmd}\` (${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s; Node ${process.version}).\n\n` +
      `Each row: a bolt database with that many free pages in spans of 1–2 pages, then ${commits} commits of 10 puts of 256 B and one of 10 KiB ` +
      `(NoFreelistSync, no fsync). Allocation = the commit's freelist.allocate calls; release = freeing the previous commit's pages at the start of the write transaction.\n\n` +
      table(results) + '\n\n![array vs map](bolt-freelist.svg)\n',
  );
  process.stdout.write(table(results) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
