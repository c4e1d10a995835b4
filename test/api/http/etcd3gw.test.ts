// Debian's python3-etcd3gw client (the grpc-gateway JSON API from Python) drives real etcd 3.4 and
// Plinth through the same session (etcd3gw-session.py); every step's result must be equal. Skipped
// when the package is not installed (apt-get install python3-etcd3gw).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, startEtcd, startPlinth } from '../../helpers/servers';

const PYTHON = '/usr/bin/python3';
const HAS_ETCD3GW = spawnSync(PYTHON, ['-c', 'import etcd3gw'], { stdio: 'ignore' }).status === 0;
const SESSION = join(__dirname, 'etcd3gw-session.py');

function session(port: number): unknown[] {
  const r = spawnSync(PYTHON, [SESSION, String(port)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`etcd3gw session failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe.skipIf(!HAS_ETCD3GW || !ETCD_AVAILABLE)('python3-etcd3gw against etcd 3.4 and Plinth', () => {
  it('gives the same results for every step', async () => {
    const runs: unknown[][] = [];
    for (const kind of ['etcd', 'plinth'] as const) {
      const server = kind === 'etcd' ? await startEtcd() : await startPlinth({ backend: 'lmdb' });
      try {
        runs.push(session(server.port));
      } finally {
        await server.stop();
      }
    }
    const [etcd, plinth] = runs;
    expect(etcd.length).toBeGreaterThan(20);
    for (let i = 0; i < etcd.length; i++) expect(plinth[i]).toEqual(etcd[i]);
  }, 120_000);
});
