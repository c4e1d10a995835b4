// bcrypt through the `bcrypt` package's async API only (it runs on libuv's thread pool), so a hash or a
// compare (tens of milliseconds at etcd's default cost) never blocks the event loop. Hashes are written
// with the "$2a$" prefix, as Go's golang.org/x/crypto/bcrypt writes them, so stored users look like etcd's;
// either prefix verifies.

interface BcryptApi {
  genSalt(rounds: number, minor: 'a' | 'b'): Promise<string>;
  hash(data: string | Buffer, salt: string): Promise<string>;
  compare(data: string | Buffer, encrypted: string): Promise<boolean>;
}
// The package ships no types and package.json is not ours to change: the three calls used, typed here.
const bcrypt = require('bcrypt') as BcryptApi;

/** golang.org/x/crypto/bcrypt's MinCost, MaxCost and DefaultCost (etcd's --bcrypt-cost default). */
export const BCRYPT_MIN_COST = 4;
export const BCRYPT_MAX_COST = 31;
export const BCRYPT_DEFAULT_COST = 10;

/** etcd's NewAuthStore: a cost outside [4, 31] falls back to the default (etcd logs a warning). */
export function effectiveBcryptCost(cost: number | undefined): number {
  if (cost === undefined || !Number.isInteger(cost) || cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) return BCRYPT_DEFAULT_COST;
  return cost;
}

/** bcrypt.GenerateFromPassword, asynchronously. */
export async function hashPassword(password: string | Buffer, cost: number): Promise<string> {
  const salt = await bcrypt.genSalt(effectiveBcryptCost(cost), 'a');
  return bcrypt.hash(password, salt);
}

/** bcrypt.CompareHashAndPassword, asynchronously: true when they match. A malformed hash never matches. */
export async function comparePassword(password: string | Buffer, hash: Buffer | string): Promise<boolean> {
  const h = typeof hash === 'string' ? hash : hash.toString('latin1');
  if (!/^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(h)) return false;
  try {
    return await bcrypt.compare(password, h);
  } catch {
    return false;
  }
}
