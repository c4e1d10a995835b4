// `plinth snapshot ...`: etcdctl's offline snapshot commands for Plinth's and etcd's snapshot files.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Crc32c } from '../mvcc/hash';
import { initRestoredMember } from '../server/bootstrap';
import { restoreSnapshot } from '../server/snapshot';
import { ENGINE_KINDS, openBackend, type EngineKind } from '../storage';
import { BoltDb } from '../storage/bolt/db';

const SNAPSHOT_USAGE = `Usage: plinth snapshot status FILE [-w simple|json|table|fields]
       plinth snapshot restore FILE --data-dir DIR [--backend lmdb|leveldb|bolt] [--skip-hash-check]
         [--name NAME] [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
         [--initial-advertise-peer-urls URL,...] [--wal-dir DIR]

Turns a snapshot taken with 'etcdctl snapshot save' from a Plinth member or from real etcd (a bbolt file,
or Plinth's earlier format) into the data dir of a member of a new cluster (as 'etcdctl snapshot
restore': the cluster flags name the new members, with etcd's defaults; restore each member's data dir
with its own --name and --initial-advertise-peer-urls).
Start a member on it with the same flags: plinth --data-dir DIR --backend <same or another engine>

'status' prints what 'etcdctl snapshot status' prints for a snapshot file (a bbolt file, from etcd or
Plinth): its hash (CRC-32C of every bucket name, key and value, in order), revision (the newest in the
key bucket), total keys (records in all buckets) and total size (the bbolt file's high-water mark).
-w/--write-out: simple (default: "hash, revision, total keys, total size"), json, table or fields.`;

export async function snapshotCommand(argv: string[]): Promise<void> {
  const fail = (msg: string): never => {
    process.stderr.write(`plinth snapshot: ${msg}\n${SNAPSHOT_USAGE}\n`);
    process.exit(2);
  };
  if (argv.some((a) => a === '--help' || a === '-h' || a === '-help')) {
    process.stdout.write(SNAPSHOT_USAGE + '\n');
    return;
  }
  if (argv[0] === 'status') return statusCommand(argv.slice(1), fail);
  if (argv[0] !== 'restore') fail(`unknown subcommand "${argv[0] ?? ''}"`);
  let file: string | undefined;
  let dataDir: string | undefined;
  let backend: EngineKind = 'lmdb';
  let skipHashCheck = false;
  let name = 'default';
  let initialCluster = '';
  let token = 'etcd-cluster';
  let peerUrls = ['http://localhost:2380'];
  let walDir = '';
  for (let i = 1; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? fail(`flag needs an argument: ${flag}`);
    if (flag === '--data-dir') dataDir = value();
    else if (flag === '--backend') {
      const v = value();
      if (!ENGINE_KINDS.includes(v as EngineKind)) fail(`invalid value "${v}" for flag --backend`);
      backend = v as EngineKind;
    } else if (flag === '--skip-hash-check') skipHashCheck = inline === undefined || inline === 'true';
    else if (flag === '--name') name = value();
    else if (flag === '--initial-cluster') initialCluster = value();
    else if (flag === '--initial-cluster-token') token = value();
    else if (flag === '--initial-advertise-peer-urls') peerUrls = value().split(',').map((u) => u.trim());
    else if (flag === '--wal-dir') walDir = value();
    else if (flag.startsWith('-')) fail(`unknown flag: ${flag}`);
    else if (!file) file = flag;
    else fail(`unexpected argument "${flag}"`);
  }
  if (!file) fail('no snapshot file given');
  if (!dataDir) fail('--data-dir is required');
  if (backend === 'memory') fail('the memory engine keeps nothing on disk: restore onto lmdb, leveldb or bolt');
  try {
    const { entries } = await restoreSnapshot(file!, dataDir!, backend, { skipHashCheck });
    const be = await openBackend(backend, { dir: join(dataDir!, 'member', 'snap') });
    try {
      const ids = await initRestoredMember(be, walDir || join(dataDir!, 'member', 'wal'), {
        name, initialCluster: initialCluster || peerUrls.map((u) => `${name}=${u}`).join(','), token, advertisePeerUrls: peerUrls,
      });
      process.stderr.write(`restored snapshot ${file} into ${dataDir} (${backend}, ${entries} entries; member ${ids.memberId.toString(16)} of cluster ${ids.clusterId.toString(16)})\n`);
    } finally {
      await be.close();
    }
  } catch (err) {
    process.stderr.write(`plinth snapshot: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/** What `etcdctl snapshot status` reports (clientv3/snapshot Status; its JSON names). */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/**
 * etcd 3.4's v3Manager.Status: over a read transaction of the bbolt file, a CRC-32C (Castagnoli) of each
 * root bucket's name and then each of its keys and values in order; the revision is the main revision of
 * the last key in the "key" bucket; every record of every bucket is counted; the size is the
 * transaction's (page high-water mark × page size).
 */
export async function snapshotStatus(path: string): Promise<SnapshotStatus> {
  await stat(path);
  const db = await BoltDb.open(path, { readOnly: true });
  try {
    const tx = db.beginRead();
    try {
      const h = new Crc32c();
      let revision = 0;
      let totalKey = 0;
      const root = tx.root.cursor();
      for (let e = root.first(); e; e = root.next()) {
        if (e.value !== undefined) throw new Error(`cannot get hash of bucket ${e.key.toString()}`);
        const b = tx.bucket(e.key);
        if (!b) throw new Error(`cannot get hash of bucket ${e.key.toString()}`);
        h.write(e.key);
        const isKey = e.key.toString() === 'key';
        const c = b.cursor();
        for (let r = c.first(); r; r = c.next()) {
          h.write(r.key);
          if (r.value) h.write(r.value);
          if (isKey && r.key.length >= 8) revision = Number(r.key.readBigInt64BE(0));
          totalKey++;
        }
      }
      return { hash: h.sum32(), revision, totalKey, totalSize: tx.size() };
    } finally {
      tx.close();
    }
  } finally {
    await db.close();
  }
}

/** go-humanize's Bytes (SI units), as etcdctl prints a size. */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / Math.pow(1000, e)) * 10 + 0.5) / 10;
  // Go's %.0f rounds an exact half to even (20.5 kB prints as "20 kB"); toFixed rounds it up.
  const whole = val - Math.floor(val) === 0.5 ? 2 * Math.round(val / 2) : Math.round(val);
  return `${val < 10 ? val.toFixed(1) : whole.toFixed(0)} ${sizes[e]}`;
}

/** etcdctl's DBStatus in each of its write-out formats. */
export function formatStatus(s: SnapshotStatus, format: string): string {
  const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize)];
  switch (format) {
    case 'simple':
      return row.join(', ');
    case 'json':
      return JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize });
    case 'fields':
      return [`"Hash" : ${s.hash}`, `"Revision" : ${s.revision}`, `"Keys" : ${s.totalKey}`, `"Size" : ${s.totalSize}`].join('\n');
    case 'table': {
      // olekukonko/tablewriter as etcdctl sets it: headers upper case and centred, cells aligned right.
      const hdr = ['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'];
      const w = hdr.map((h, i) => Math.max(h.length, row[i].length));
      const line = '+' + w.map((n) => '-'.repeat(n + 2)).join('+') + '+';
      const centre = (t: string, n: number) => {
        const gap = n - t.length;
        return ' '.repeat(Math.floor(gap / 2)) + t + ' '.repeat(gap - Math.floor(gap / 2));
      };
      return [
        line,
        '|' + hdr.map((h, i) => ` ${centre(h, w[i])} `).join('|') + '|',
        line,
        '|' + row.map((c, i) => ` ${c.padStart(w[i])} `).join('|') + '|',
        line,
      ].join('\n');
    }
    default:
      throw new Error(`unknown format ${format}`);
  }
}

async function statusCommand(argv: string[], fail: (msg: string) => never): Promise<void> {
  let format = 'simple';
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (flag === '-w' || flag === '--write-out') format = inline ?? argv[++i] ?? fail(`flag needs an argument: ${flag}`);
    else if (flag.startsWith('-')) fail(`unknown flag: ${flag}`);
    else files.push(argv[i]);
  }
  if (files.length !== 1) fail('snapshot status requires exactly one argument');
  if (!['simple', 'json', 'table', 'fields'].includes(format)) fail(`${format} not supported as output format (simple, json, table or fields)`);
  try {
    process.stdout.write(formatStatus(await snapshotStatus(files[0]), format) + '\n');
  } catch (err) {
    process.stderr.write(`plinth snapshot: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
