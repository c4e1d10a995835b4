import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryStorage } from '../raft/core/memory-storage';
import { RawNode } from '../raft/core/raw-node';
import { encodeConfChange } from '../raft/core/raw-node';
import { ConfChangeType, EntryType, type ConfState, type Entry, type HardState, type SnapshotMetadata } from '../raft/core/types';
import { queryMembers } from '../raft/transport/peer-transport';
import type { PeerTls } from '../raft/transport/sockets';
import { Wal, walExists, type WalMetadata } from '../raft/wal/wal';
import { openBackend, type Backend } from '../storage';
import { REJECTED_CONF_CHANGE_PREFIX } from '../storage/etcd-layout';
import { dumpConsistentIndex, installBackendDump } from './backend-dump';
import type { ServerConfig } from './config';
import type { Log, Logger } from '../log';
import { clusterId as deriveClusterId, memberId as deriveMemberId } from './identity';
import { bootstrapMembers, ClusterConfigError, idHex, memberContext, parseInitialCluster, decodeMembers, type Member } from './membership';

// Starting a member on its data dir, as etcd's NewServer does: a new member of a new cluster writes the
// cluster's first entries (one conf change per initial member, the same on every member, so their logs
// agree); a restart reads everything back from the WAL and the backend and ignores the initial-cluster
// flags. The log's metadata records which member and cluster wrote it, so a data dir is never reused
// for another cluster by mistake.

export const META_CONSISTENT_INDEX = Buffer.from('consistent_index');

export interface OpenedMember {
  wal: Wal;
  backend: Backend;
  storage: MemoryStorage;
  node: RawNode;
  memberId: bigint;
  clusterId: bigint;
  /** The conf state as of the log's snapshot point (or bootstrap). */
  confState: ConfState;
  /** The backend's consistent index: entries up to it are in the backend already. */
  consistentIndex: number;
  /** True for the first start of a new member (no log before). */
  fresh: boolean;
  /** True for the first start of a member joining a running cluster (--initial-cluster-state existing). */
  joining: boolean;
  /** The initial members, on a fresh start (for peers to dial before the conf changes apply). */
  initialMembers: Member[];
}

export type { Log } from '../log';

export function walDirOf(cfg: ServerConfig): string {
  return cfg.walDir || join(cfg.dataDir, 'member', 'wal');
}

export function snapDirOf(cfg: ServerConfig): string {
  return join(cfg.dataDir, 'member', 'snap');
}

/** Where a snapshot received from the leader is kept until the backend holds it. */
export function receivedSnapshotFile(cfg: ServerConfig, index: number): string {
  return join(snapDirOf(cfg), `${index.toString(16).padStart(16, '0')}.snap.db`);
}

/** etcd's defaults: one member named after --name at its advertised peer URLs. */
export function initialClusterOf(cfg: ServerConfig): string {
  return cfg.initialCluster || cfg.initialAdvertisePeerUrls.map((u) => `${cfg.name}=${u}`).join(',');
}

export async function openMember(cfg: ServerConfig, logger: Logger, onSpaceProblem: (err: Error | undefined) => void, peerTls?: PeerTls): Promise<OpenedMember> {
  const log = logger.module('server/bootstrap.ts');
  const walLog = logger.module('raft/wal/wal.ts');
  const walDir = walDirOf(cfg);
  const haveWal = await walExists(walDir);
  let metadata: WalMetadata;
  /** A log written before Plinth had clusters (no metadata): a single member. */
  let legacy = false;
  let initialMembers: Member[] = [];
  const joining = !haveWal && cfg.initialClusterState === 'existing';
  if (joining) {
    const j = await joinExistingCluster(cfg, log, peerTls);
    metadata = { memberId: j.localId, clusterId: j.clusterId };
    initialMembers = j.members;
  } else if (!haveWal) {
    const b = bootstrapMembers(parseInitialCluster(initialClusterOf(cfg)), cfg.initialClusterToken, cfg.name, cfg.initialAdvertisePeerUrls);
    metadata = { memberId: b.localId, clusterId: b.clusterId };
    initialMembers = b.members;
  } else {
    metadata = { memberId: 0n, clusterId: 0n }; // read from the log below
  }

  const walOpts = { dir: walDir, noSync: cfg.unsafeNoFsync, segmentBytes: cfg.walSegmentBytes, log: (m: string) => walLog('info', m), onSpaceProblem };
  const opened = await Wal.open(walOpts, 0, haveWal ? undefined : metadata);
  const wal = opened.wal;
  let { entries, hardState, snapshot } = opened;
  try {
    if (haveWal) {
      if (opened.metadata) metadata = opened.metadata;
      else {
        // A log written before Plinth had clusters: a single member, named by its flags.
        legacy = true;
        const id = deriveMemberId(cfg.initialAdvertisePeerUrls, cfg.initialClusterToken);
        metadata = { memberId: id, clusterId: deriveClusterId([id]) };
        log('info', 'the WAL has no cluster metadata (written by an older Plinth): a single-member cluster', { 'member-id': metadata.memberId.toString(16) });
      }
    } else if (joining) {
      // No entries of its own: the leader sends the log from its start, or a snapshot of its backend.
      log('info', 'starting a new member of an existing cluster', {
        'local-member-id': metadata.memberId.toString(16), 'cluster-id': metadata.clusterId.toString(16),
        'initial-cluster': initialClusterOf(cfg),
      });
    } else {
      // The cluster's first entries: one AddNode per initial member (sorted by ID, as etcd), committed.
      const boot: Entry[] = initialMembers.map((m, i) => ({
        index: i + 1,
        term: 1,
        type: EntryType.CONF_CHANGE,
        data: encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: m.id, context: memberContext(m) }),
      }));
      hardState = { term: 1, vote: 0n, commit: boot.length };
      await wal.append(boot, hardState);
      entries = boot;
      log('info', 'starting a new member of a new cluster', {
        'local-member-id': metadata.memberId.toString(16), 'cluster-id': metadata.clusterId.toString(16),
        'initial-cluster': initialClusterOf(cfg),
      });
    }

    const backend = await openBackend(cfg.backend, {
      dir: snapDirOf(cfg),
      noSync: cfg.unsafeNoFsync,
      bolt: { freelistType: cfg.backendBboltFreelistType, freelistSync: cfg.backendBboltFreelistSync },
    });
    let ci = readConsistentIndex(backend);
    // A snapshot from the leader recorded in the log but not (wholly) in the backend: install it again.
    if (snapshot && ci < snapshot.index) {
      const file = receivedSnapshotFile(cfg, snapshot.index);
      const fileCi = await dumpConsistentIndex(file).catch(() => undefined);
      if (fileCi === undefined) {
        await backend.close();
        throw new Error(`the WAL starts after a snapshot at index ${snapshot.index}, but the backend has applied only up to ${ci} and the snapshot file ${file} is missing or damaged; refusing to start`);
      }
      log('info', 'restoring the backend from the received snapshot', { file, 'snapshot-index': snapshot.index });
      await installBackendDump(backend, file);
      ci = readConsistentIndex(backend);
    }
    const lastIndex = opened.wal.lastIndex;
    if (lastIndex < ci) {
      await backend.close();
      throw new Error(`the WAL in ${walDir} ends at entry ${lastIndex} but the backend has applied up to ${ci}: the WAL is missing entries; refusing to start`);
    }
    await removeStaleSnapshotFiles(cfg, snapshot, backend.kind !== 'memory');

    // raft's view of the log: the snapshot point, then the entries after it.
    const storage = new MemoryStorage();
    const snapMeta = snapshotPoint(snapshot, entries, joining ? [] : initialMembers, metadata, haveWal, legacy);
    storage.applySnapshot({ metadata: snapMeta });
    storage.append(entries);
    storage.setHardState(hardState);
    const electionTick = Math.max(1, Math.round(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs));
    const node = new RawNode({
      id: metadata.memberId,
      electionTick,
      heartbeatTick: 1,
      storage,
      // Every entry after the snapshot point is handed out again; the server skips those the backend has.
      applied: snapMeta.index,
      maxSizePerMsg: 1024 * 1024,
      maxCommittedSizePerReady: 16 * 1024 * 1024,
      maxInflightMsgs: 512,
      maxUncommittedEntriesSize: 0,
      checkQuorum: true,
      preVote: cfg.preVote,
      random: Math.random,
      logger: logger.module('raft/raft.ts'),
    });
    return {
      wal, backend, storage, node, memberId: metadata.memberId, clusterId: metadata.clusterId,
      confState: snapMeta.confState, consistentIndex: ci, fresh: !haveWal, joining, initialMembers,
    };
  } catch (err) {
    await wal.close().catch(() => {});
    throw err;
  }
}

/**
 * A member joining a running cluster (--initial-cluster-state existing, after `member add`), as etcd's
 * NewServer does it: the cluster's ID and members from the first other member of --initial-cluster that
 * answers (etcd's GetClusterFromRemotePeers); the members must be exactly those of --initial-cluster,
 * matched by peer URLs (ValidateClusterAndAssignIDs), and this member's ID is the one `member add` gave.
 */
async function joinExistingCluster(cfg: ServerConfig, log: Log, peerTls: PeerTls | undefined): Promise<{ localId: bigint; clusterId: bigint; members: Member[] }> {
  const initial = parseInitialCluster(initialClusterOf(cfg));
  // The same checks as for a new cluster (local name present, advertised URLs, no duplicate URL).
  bootstrapMembers(initial, cfg.initialClusterToken, cfg.name, cfg.initialAdvertisePeerUrls);
  const remoteUrls = [...initial].filter(([name]) => name !== cfg.name).flatMap(([, urls]) => urls).sort();
  let remote: { clusterId: bigint; members: Member[] } | undefined;
  for (const url of remoteUrls) {
    try {
      const info = JSON.parse((await queryMembers(url, { timeoutMs: 5000, tls: peerTls })).toString('utf8')) as { clusterId: string; members: unknown[] };
      remote = {
        clusterId: BigInt('0x' + info.clusterId),
        members: decodeMembers(info.members),
      };
      break;
    } catch (err) {
      log('warn', 'failed to get cluster information from a peer', { 'remote-peer-url': url, error: (err as Error).message });
    }
  }
  if (!remote) throw new ClusterConfigError('cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs');
  const norm = (urls: string[]) => urls.map((u) => new URL(u).href.replace(/\/$/, '')).sort().join(',');
  const describe = () => remote!.members.map((m) => `${m.name}=${m.peerUrls.join(',')}`).join(',');
  if (remote.members.length !== initial.size) {
    throw new ClusterConfigError(`error validating peerURLs ${describe()}: member count is unequal`);
  }
  const localUrls = norm(cfg.initialAdvertisePeerUrls);
  let localId: bigint | undefined;
  for (const m of remote.members) {
    const match = [...initial.values()].some((urls) => norm(urls) === norm(m.peerUrls));
    if (!match) {
      throw new ClusterConfigError(`error validating peerURLs ${describe()}: PeerURLs: no match found for existing member (${idHex(m.id)}, [${m.peerUrls.join(' ')}])`);
    }
    if (norm(m.peerUrls) === localUrls) localId = m.id;
  }
  if (localId === undefined) throw new ClusterConfigError(`error validating peerURLs ${describe()}: this member's peer URLs are not in the cluster; add it with 'etcdctl member add' first`);
  return { localId, clusterId: remote.clusterId, members: remote.members };
}

/**
 * The raft snapshot point to start from: the log's own, or (no snapshot recorded yet) the start of
 * the log. A new cluster starts with its members known, as etcd's bootstrap applies them at once; a
 * log from before clusters starts with this member as the only voter.
 */
function snapshotPoint(snapshot: SnapshotMetadata | undefined, entries: Entry[], initial: Member[], meta: WalMetadata, haveWal: boolean, legacy: boolean): SnapshotMetadata {
  if (snapshot) return snapshot;
  const first = entries.length ? entries[0].index : 1;
  const index = first - 1;
  const term = index > 0 && entries.length ? entries[0].term : 0;
  if (!haveWal) return { index: 0, term: 0, confState: { voters: initial.map((m) => m.id), learners: [] } };
  // A log rebuilds the conf state as its conf changes apply (a member that joined an existing cluster
  // may have none yet: it waits for the leader); a log from before clusters has none.
  return { index, term, confState: legacy ? { voters: [meta.memberId], learners: [] } : { voters: [], learners: [] } };
}

export function readConsistentIndex(backend: Backend): number {
  const b = backend.get('meta', META_CONSISTENT_INDEX);
  return b ? Number(b.readBigUInt64BE(0)) : 0;
}

/** Received snapshot files the backend holds already (the memory engine keeps the latest: it is its state). */
async function removeStaleSnapshotFiles(cfg: ServerConfig, snapshot: SnapshotMetadata | undefined, durable: boolean): Promise<void> {
  let names: string[];
  try {
    names = await readdir(snapDirOf(cfg));
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^([0-9a-f]{16})\.snap\.db(\.tmp)?$/.exec(n);
    if (!m) continue;
    const index = parseInt(m[1], 16);
    const keep = !durable && !m[2] && snapshot !== undefined && index === snapshot.index;
    if (!keep) await rm(join(snapDirOf(cfg), n), { force: true });
  }
}

export type { HardState };

/**
 * Makes a data dir whose backend was just restored from a snapshot into a member of a new cluster, as
 * `etcdctl snapshot restore` does: the old members are dropped from the backend, the log starts with
 * the new cluster's conf changes (committed), and the consistent index is set to them so that every
 * key of the snapshot stays as it is and the new members are applied on the first start.
 */
export async function initRestoredMember(
  backend: Backend,
  walDir: string,
  opts: { name: string; initialCluster: string; token: string; advertisePeerUrls: string[] },
): Promise<{ memberId: bigint; clusterId: bigint }> {
  if (await walExists(walDir)) throw new ClusterConfigError(`wal-dir "${walDir}" exists`);
  const b = bootstrapMembers(parseInitialCluster(opts.initialCluster), opts.token, opts.name, opts.advertisePeerUrls);
  for (const bucket of ['members', 'members_removed'] as const) {
    const keys: Buffer[] = [];
    await backend.scan(bucket, Buffer.alloc(0), undefined, (k) => void keys.push(k));
    for (const k of keys) backend.delete(bucket, k);
  }
  // The old cluster's record of refused conf changes names indexes of its log, not the new one's.
  const stale: Buffer[] = [];
  await backend.scan('meta', Buffer.from(REJECTED_CONF_CHANGE_PREFIX, 'latin1'), undefined, (k) => {
    if (k.toString('latin1').startsWith(REJECTED_CONF_CHANGE_PREFIX)) stale.push(k);
  });
  for (const k of stale) backend.delete('meta', k);
  // The new members are in the backend already: their conf changes below are at or before the
  // consistent index, so a start only rebuilds raft's configuration from them.
  for (const m of b.members) backend.put('members', Buffer.from(idHex(m.id)), memberContext(m));
  const n = b.members.length;
  const ci = Buffer.allocUnsafe(8);
  ci.writeBigUInt64BE(BigInt(n));
  backend.put('meta', META_CONSISTENT_INDEX, ci);
  await backend.commit();
  const { wal } = await Wal.open({ dir: walDir }, 0, { memberId: b.localId, clusterId: b.clusterId });
  const boot: Entry[] = b.members.map((m, i) => ({
    index: i + 1, term: 1, type: EntryType.CONF_CHANGE,
    data: encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: m.id, context: memberContext(m) }),
  }));
  await wal.append(boot, { term: 1, vote: 0n, commit: n });
  await wal.close();
  return { memberId: b.localId, clusterId: b.clusterId };
}
