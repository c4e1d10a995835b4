// The pure parts of `bench:compare --cluster N`: which sizes and rows it takes, the member command lines
// (etcd's own flags, the same for real etcd and Plinth), the load tool's --endpoints, and reading
// Maintenance.Status answers to tell whether the members agree on a leader. No I/O here; unit-tested in
// test/bench/cluster-cmd.test.ts. Starting and stopping the processes is bench/lib/cluster.ts.

import { FlagError } from './flags';
import { readVarintBig, scanFields } from './wire';

export type ClusterKind = 'etcd' | 'plinth';

/** 1 = a single server (bench:compare's original mode); 3 and 5 are the cluster sizes etcd's docs benchmark. */
export const CLUSTER_SIZES: readonly number[] = [1, 3, 5];

export function parseClusterSize(n: number): number {
  if (!CLUSTER_SIZES.includes(n)) throw new FlagError(`--cluster: 1, 3 or 5 members (got ${n})`);
  return n;
}

/** The rows a cluster run measures, in the order its table shows them. */
export const CLUSTER_ROW_IDS: readonly string[] = ['put-100c', 'range-l-100c', 'range-s-100c', 'txn-put'];

/**
 * The row ids of a cluster run from --workloads (none, or `targets`: all of CLUSTER_ROW_IDS), in table order.
 * Anything else (single-server rows, scaling, list-all) is refused rather than silently dropped.
 */
export function clusterRowIds(wanted: readonly string[]): string[] {
  const ids = new Set<string>();
  if (wanted.length === 0) CLUSTER_ROW_IDS.forEach((i) => ids.add(i));
  for (const w of wanted) {
    if (w === 'targets') CLUSTER_ROW_IDS.forEach((i) => ids.add(i));
    else if (CLUSTER_ROW_IDS.includes(w)) ids.add(w);
    else throw new FlagError(`--cluster runs only the workloads ${CLUSTER_ROW_IDS.join(', ')} (or targets); not ${JSON.stringify(w)}`);
  }
  return CLUSTER_ROW_IDS.filter((i) => ids.has(i));
}

/** Base name of the result files: compare.{md,json,svg} for one server, compare-clusterN.* for N members. */
export const resultBaseName = (size: number): string => (size > 1 ? `compare-cluster${size}` : 'compare');

// ---------------------------------------------------------------------------------------------------
// Command lines

/** A member's ports; strings stand for placeholders (C1, P1) when a command is shown rather than run. */
export interface MemberAddr {
  client: number | string;
  peer: number | string;
}

export interface ClusterLayout {
  kind: ClusterKind;
  /** m1..mN */
  names: string[];
  addrs: MemberAddr[];
  dataDirs: string[];
  token: string;
}

export interface MemberCommandOpts {
  etcdBin: string;
  /** node, and the path of bin/plinth.js */
  nodeBin: string;
  plinthJs: string;
  /** Plinth's storage engine */
  backend: string;
  heartbeatMs: number;
  electionMs: number;
}

export const memberNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${i + 1}`);

const url = (port: number | string): string => `http://127.0.0.1:${port}`;

/** host:port of each member's client URL, for the load tool and gRPC clients. */
export const clientEndpoints = (addrs: readonly MemberAddr[]): string[] => addrs.map((a) => `127.0.0.1:${a.client}`);

/** etcd's --initial-cluster: name=peerURL, comma-separated, in member order. */
export function initialCluster(names: readonly string[], addrs: readonly MemberAddr[]): string {
  if (names.length !== addrs.length) throw new Error(`${names.length} names for ${addrs.length} members`);
  return names.map((n, i) => `${n}=${url(addrs[i].peer)}`).join(',');
}

/**
 * The command line of member i: etcd's flags for a new static cluster, the same for both servers; etcd also
 * gets its zap logger on stderr (its default logger is deprecated in 3.4), Plinth its storage engine.
 */
export function memberCommand(layout: ClusterLayout, i: number, o: MemberCommandOpts): { cmd: string; args: string[] } {
  const n = layout.names.length;
  if (!(i >= 0 && i < n) || layout.addrs.length !== n || layout.dataDirs.length !== n) {
    throw new Error(`member ${i} of a layout with ${n} names, ${layout.addrs.length} addresses, ${layout.dataDirs.length} data dirs`);
  }
  const a = layout.addrs[i];
  const common = [
    '--name', layout.names[i],
    '--data-dir', layout.dataDirs[i],
    '--listen-client-urls', url(a.client),
    '--advertise-client-urls', url(a.client),
    '--listen-peer-urls', url(a.peer),
    '--initial-advertise-peer-urls', url(a.peer),
    '--initial-cluster', initialCluster(layout.names, layout.addrs),
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', layout.token,
    '--heartbeat-interval', String(o.heartbeatMs),
    '--election-timeout', String(o.electionMs),
  ];
  if (layout.kind === 'etcd') return { cmd: o.etcdBin, args: [...common, '--logger', 'zap', '--log-outputs', 'stderr'] };
  return { cmd: o.nodeBin, args: [o.plinthJs, ...common, '--backend', o.backend] };
}

/** A command line as one shell-readable string (arguments with shell metacharacters single-quoted). */
export function shellLine(cmd: string, args: readonly string[]): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [cmd, ...args].map(q).join(' ');
}

// ---------------------------------------------------------------------------------------------------
// Leader agreement from Maintenance.Status answers

export interface MemberStatus {
  /** ResponseHeader.member_id: who answered */
  memberId: bigint;
  /** the member it believes leads (0: none) */
  leader: bigint;
  raftTerm: bigint;
  raftIndex: bigint;
}

const u64 = (buf: Uint8Array, at: number): bigint => BigInt.asUintN(64, readVarintBig(buf, at)[0]);

/** Reads an etcdserverpb.StatusResponse (member ids are uint64: read unsigned). */
export function decodeStatus(buf: Uint8Array): MemberStatus {
  const s: MemberStatus = { memberId: 0n, leader: 0n, raftTerm: 0n, raftIndex: 0n };
  scanFields(buf, (no, wt, start, end) => {
    if (no === 1 && wt === 2) {
      scanFields(buf, (no2, wt2, s2) => {
        if (no2 === 2 && wt2 === 0) s.memberId = u64(buf, s2);
      }, start, end);
    } else if (wt === 0 && no === 4) s.leader = u64(buf, start);
    else if (wt === 0 && no === 5) s.raftIndex = u64(buf, start);
    else if (wt === 0 && no === 6) s.raftTerm = u64(buf, start);
  });
  return s;
}

export type LeaderAgreement = { ok: true; leader: number; term: bigint } | { ok: false; reason: string };

/**
 * Whether every member answered and all name the same leader, which is one of them. `answers[i]` is member
 * i's status or the error it gave; the leader is returned as a member index.
 */
export function agreedLeader(answers: readonly (MemberStatus | Error)[]): LeaderAgreement {
  const show = () =>
    answers.map((a, i) => `m${i + 1}: ${a instanceof Error ? `error ${a.message.split('\n')[0]}` : `leader ${a.leader.toString(16)} term ${a.raftTerm}`}`).join('; ');
  if (answers.length === 0) return { ok: false, reason: 'no members' };
  const leaders = new Set<bigint>();
  for (const a of answers) {
    if (a instanceof Error) return { ok: false, reason: `not every member answers: ${show()}` };
    leaders.add(a.leader);
  }
  const [id] = leaders;
  if (leaders.size !== 1 || id === 0n) return { ok: false, reason: `no agreed leader: ${show()}` };
  const index = answers.findIndex((a) => (a as MemberStatus).memberId === id);
  if (index < 0) return { ok: false, reason: `the leader ${id.toString(16)} is none of the members: ${show()}` };
  return { ok: true, leader: index, term: (answers[index] as MemberStatus).raftTerm };
}
