// A server's memory from /proc/<pid>/status: VmRSS now, VmHWM (peak RSS since start), and a sampler that
// keeps the largest VmRSS seen while a workload runs (to measure one phase's growth when VmHWM already
// holds an earlier peak).

import { readFileSync } from 'node:fs';

/** A `Vm…:  1234 kB` field of /proc/<pid>/status in kB; NaN when the process is gone. */
export function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    return parseStatusKb(readFileSync(`/proc/${pid}/status`, 'latin1'), field);
  } catch {
    return NaN;
  }
}

export function parseStatusKb(status: string, field: string): number {
  const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : NaN;
}

export interface RssStats {
  /** VmRSS when sampling started, MB. */
  startMb: number;
  /** Largest VmRSS sampled (including the first and last), MB. */
  maxMb: number;
  /** VmRSS when sampling stopped, MB. */
  endMb: number;
  /** VmHWM when sampling started / stopped, MB. */
  hwmStartMb: number;
  hwmEndMb: number;
}

const mb = (kb: number) => kb / 1024;

/** Samples VmRSS of pid every intervalMs until stop(). */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private maxKb: number;
  private readonly startKb: number;
  private readonly hwmStartKb: number;
  constructor(private readonly pid: number, intervalMs = 100) {
    this.startKb = statusKb(pid, 'VmRSS');
    this.hwmStartKb = statusKb(pid, 'VmHWM');
    this.maxKb = this.startKb;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }
  private sample(): number {
    const v = statusKb(this.pid, 'VmRSS');
    if (v > this.maxKb || Number.isNaN(this.maxKb)) this.maxKb = v;
    return v;
  }
  stop(): RssStats {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const end = this.sample();
    return {
      startMb: mb(this.startKb),
      maxMb: mb(this.maxKb),
      endMb: mb(end),
      hwmStartMb: mb(this.hwmStartKb),
      hwmEndMb: mb(statusKb(this.pid, 'VmHWM')),
    };
  }
}
