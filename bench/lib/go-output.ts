// Parser for the text etcd's Go benchmark tool (tools/benchmark, pkg/report) prints:
//
//   Summary:
//     Total:	1.8145 secs.
//     Slowest:	0.0543 secs.            (… Fastest, Average, Stddev)
//     Requests/sec:	11022.2080
//   Response time histogram: …
//   Latency distribution:
//     10% in 0.0041 secs.              (… 25, 50, 75, 90, 95, 99, 99.9; a percentile that is 0 is not printed)
//   Error distribution:
//     [12]	some error
//
// `watch` prints two such reports, each after a title line ("Watch creation summary:", "Watch events received
// summary:"); 3.5's txn-mixed prints "Total Read Ops: N" / "Details:" before each. The progress bar (pb.v1)
// shares stdout and redraws with \r. Pure; unit-tested in test/bench/go-output.test.ts.

import { PERCENTILES, type Summary } from './stats';

export interface GoSection extends Summary {
  /** The title line before the report, without its colon ('' when there is none). */
  title: string;
  errorDist: Record<string, number>;
}

const num = (s: string): number => {
  const v = Number(s);
  return Number.isFinite(v) ? v : NaN;
};

function emptySection(title: string): GoSection {
  const pct: Record<string, number> = {};
  for (const p of PERCENTILES) pct[String(p)] = 0;
  return { title, count: 0, errors: 0, totalSec: 0, rps: 0, fastest: 0, slowest: 0, average: 0, stddev: 0, pct, errorDist: {} };
}

/** Every report in the tool's output, in order. Latencies in ms, Total in seconds. */
export function parseGoOutput(text: string): GoSection[] {
  const lines = text.split('\n').map((l) => {
    const r = l.lastIndexOf('\r');
    return (r >= 0 ? l.slice(r + 1) : l).replace(/\s+$/, '');
  });
  const sections: GoSection[] = [];
  let cur: GoSection | undefined;
  let title = '';
  let mode: 'none' | 'summary' | 'hist' | 'lat' | 'err' = 'none';
  const histCounts = new Map<GoSection, number>();
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '') continue;
    if (line === 'Summary:') {
      cur = emptySection(title);
      sections.push(cur);
      title = '';
      mode = 'summary';
      continue;
    }
    if (line === 'Response time histogram:') {
      mode = 'hist';
      continue;
    }
    if (line === 'Latency distribution:') {
      mode = 'lat';
      continue;
    }
    if (line === 'Error distribution:') {
      if (!cur || mode === 'none') {
        // a report with errors only (no successful request) has no Summary block
        cur = emptySection(title);
        sections.push(cur);
        title = '';
      }
      mode = 'err';
      continue;
    }
    let m: RegExpMatchArray | null;
    if (mode === 'summary' && cur && (m = line.match(/^(Total|Slowest|Fastest|Average|Stddev):\s+(\S+) secs\.$/))) {
      const v = num(m[2]);
      if (m[1] === 'Total') cur.totalSec = v;
      else if (m[1] === 'Slowest') cur.slowest = v * 1000;
      else if (m[1] === 'Fastest') cur.fastest = v * 1000;
      else if (m[1] === 'Average') cur.average = v * 1000;
      else cur.stddev = v * 1000;
      continue;
    }
    if (mode === 'summary' && cur && (m = line.match(/^Requests\/sec:\s+(\S+)$/))) {
      cur.rps = num(m[1]);
      cur.count = Math.round(cur.rps * cur.totalSec);
      continue;
    }
    if (mode === 'hist' && cur && (m = line.match(/^\S+ \[(\d+)\]/))) {
      histCounts.set(cur, (histCounts.get(cur) ?? 0) + Number(m[1]));
      continue;
    }
    if (mode === 'lat' && cur && (m = line.match(/^([\d.]+)% in (\S+) secs\.$/))) {
      cur.pct[String(Number(m[1]))] = num(m[2]) * 1000;
      continue;
    }
    if (mode === 'err' && cur && (m = raw.match(/^\s+\[(\d+)\]\t(.*)$/))) {
      const n = Number(m[1]);
      cur.errors += n;
      cur.errorDist[m[2]] = (cur.errorDist[m[2]] ?? 0) + n;
      continue;
    }
    // Anything else ends the current block; a line ending in ':' may title the next report.
    mode = 'none';
    if (/:$/.test(line) && !/^Details:$/.test(line)) title = line.slice(0, -1);
    else if ((m = line.match(/^(Total (Read|Write) Ops): \d+$/))) title = m[1];
    else if ((m = line.match(/^(.*summary):\s*$/i))) title = m[1];
  }
  // The histogram's counts add up to the exact number of successful requests (rps × total is rounded).
  for (const [sec, n] of histCounts) sec.count = n;
  return sections;
}

/** The one report of a single-report command, or the one whose title matches. Throws when absent. */
export function pickSection(sections: GoSection[], title?: RegExp): GoSection {
  const s = title ? sections.find((x) => title.test(x.title)) : sections[sections.length - 1];
  if (!s) throw new Error(`no report${title ? ` titled ${title}` : ''} in the benchmark tool's output`);
  return s;
}
