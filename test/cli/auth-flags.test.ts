import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/flags';
import { ETCD_AVAILABLE, freePort } from '../helpers/servers';

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');

describe('auth flags', () => {
  it("has etcd's defaults: --bcrypt-cost 10, --auth-token simple, --auth-token-ttl 300", () => {
    const cmd = parseArgs([]);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect([cmd.config.bcryptCost, cmd.config.authToken, cmd.config.authTokenTtlS]).toEqual([10, 'simple', 300]);
  });

  it('takes them as flags and ETCD_* variables', () => {
    const cmd = parseArgs(['--bcrypt-cost', '4', '--auth-token=jwt,pub-key=a,priv-key=b,sign-method=RS256', '--auth-token-ttl', '60']);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect([cmd.config.bcryptCost, cmd.config.authToken, cmd.config.authTokenTtlS]).toEqual([4, 'jwt,pub-key=a,priv-key=b,sign-method=RS256', 60]);
    const env = parseArgs([], { ETCD_BCRYPT_COST: '5', ETCD_AUTH_TOKEN: 'simple', ETCD_AUTH_TOKEN_TTL: '7' });
    if (env.kind !== 'serve') throw new Error('not serve');
    expect([env.config.bcryptCost, env.config.authTokenTtlS]).toEqual([5, 7]);
    expect(() => parseArgs(['--bcrypt-cost', 'x'])).toThrow(UsageError);
  });

  it('a bad --auth-token: one line and exit 1, with etcd\'s words (as etcd, which refuses to start)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-auth-flag-'));
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const r = spawnSync(process.execPath, [BIN, '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url, '--backend', 'memory', '--auth-token', 'bogus'], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(1);
      const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.msg === 'failed to start etcd');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 'fatal', error: 'auth: invalid auth options' });
      if (ETCD_AVAILABLE) {
        const ep = await freePort();
        const pp = await freePort();
        const e = spawnSync('etcd', ['--data-dir', join(dir, 'etcd'), '--listen-client-urls', `http://127.0.0.1:${ep}`, '--advertise-client-urls', `http://127.0.0.1:${ep}`,
          '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`, '--initial-cluster', `default=http://127.0.0.1:${pp}`, '--auth-token', 'bogus'], { encoding: 'utf8', timeout: 20_000 });
        expect(e.status).not.toBe(0);
        expect(e.stderr).toContain('auth: invalid auth options');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
