import * as prom from 'prom-client';
import { sampleLine, type Family, type Registry } from '../../metrics';

// The Node.js runtime's metrics where etcd exports Go's (go_*): prom-client's default metrics
// (nodejs_eventloop_lag_*, nodejs_heap_*, nodejs_gc_duration_seconds, nodejs_active_*, nodejs_version_info,
// and its process_* extras), read at scrape time into Plinth's registry. Nothing here is on the request
// path: prom-client samples the event loop delay and GC pauses on its own (perf_hooks), and the rest is
// read when /metrics is scraped. Plinth's own process_* (Go's names and values) win a name clash.

const attached = new WeakSet<Registry>();

/** Adds prom-client's Node.js metrics to reg (once per registry). */
export function addNodeMetrics(reg: Registry): void {
  if (attached.has(reg)) return;
  attached.add(reg);
  const node = new prom.Registry();
  prom.collectDefaultMetrics({ register: node });
  reg.addExternal(async () => {
    const out: Family[] = [];
    for (const m of await node.getMetricsAsJSON()) {
      const j = m as unknown as { name: string; help: string; type: string; values: { value: number; labels: Record<string, string | number>; metricName?: string }[] };
      const type = j.type === 'counter' || j.type === 'gauge' || j.type === 'histogram' || j.type === 'summary' ? j.type : 'untyped';
      out.push({ name: j.name, help: j.help, type, samples: j.values.map((v) => sampleLine(v.metricName ?? j.name, v.labels, v.value)) });
    }
    return out;
  });
}
