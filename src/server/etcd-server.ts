import { rename, rm } from 'node:fs/promises';
import { Errors } from '../errors';
import { isReadOnly, KV } from '../mvcc/kv';
import { KVStore } from '../mvcc/kv-store';
import type {
  DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, StoredRangeResponse,
  RequestOp, TxnRequest, TxnResponse,
} from '../mvcc/types';
import { decodeConfChange } from '../raft/core/raw-node';
import { EntryType, ErrProposalDropped, StateType, type ConfChange, type Entry, type SnapshotMetadata, type SoftState } from '../raft/core/types';
import { RaftDriver } from '../raft/driver';
import { PeerTransport } from '../raft/transport/peer-transport';
import type { Backend } from '../storage';
import { REJECTED_CONF_CHANGE_PREFIX } from '../storage/etcd-layout';
import { AlarmStore, AlarmType, type Alarm } from './alarms';
import { AlarmAction, Applier, type ApplyResult } from './applier';
import { BackendCommitter } from './backend-committer';
import { installBackendDump, writeBackendDump } from './backend-dump';
import { META_CONSISTENT_INDEX, openMember, readConsistentIndex, receivedSnapshotFile, snapDirOf, type Log } from './bootstrap';
import { effectiveQuota, type ServerConfig } from './config';
import { takeSnapshot, type SnapshotData } from './snapshot';
import { decodeInternalRequest, encodeInternalRequest, type AlarmRequest, type InternalRequest } from './internal-request';
import { decodeMembers, encodeMembers, idHex, Membership, type Member } from './membership';
import { Reconfiguration } from './reconfiguration';
import { lockDataDir, type DataDirLock } from './data-dir-lock';
import { ProposalWaiters } from './proposals';
import { ReadIndexer } from './read-index';
import { readRequestAuth, readRequestId, RequestIdGenerator } from './request-id';
import { preparePeerTls } from './peer-tls';
import type { PeerTls } from '../raft/transport/sockets';
import { describeRequest, isSlow, warnSlow } from './slow-log';
import { silentLogger, type Logger } from '../log';
import { checkDelete, checkPut, checkRange, checkTxn } from './validate';
import { WatchHub, type WatchOptions, type WatchSink, type Watcher } from '../watch/hub';
import type { KeyValue } from '../mvcc/key-value';
import { hashBackend, hashKV } from '../mvcc/hash';
import { Lessor } from '../lease/lessor';
import { newAutoCompactor, parseCompactionRetention, type Clock } from './auto-compactor';
import type { BoundListener } from '../net/bound-listener';
import { LeaseForwarder } from './lease-forwarding';
import {
  AuthStore, newTokenProvider, ROOT_USER, type AuthInfo,
  type NameRequest, type RoleGrantPermissionRequest, type RoleRequest, type RoleRevokePermissionRequest,
  type UserAddRequest, type UserChangePasswordRequest, type UserGrantRoleRequest, type UserRevokeRoleRequest,
} from '../auth';
import { ADMIN_AUTH_KINDS, type AuthKind } from './internal-request';
import { WriteAuthChecks } from './auth-checks';
import type { EtcdError } from '../errors';

/**
 * Who a client request comes from, for the permission checks: what its token stands for (`info`
 * undefined: it came without a token). The API layer passes one for client requests while auth is on
 * (undefined while auth is off: the request paths then cost one check); requests of the server's own
 * (lease expiry, publishing) pass none and are not checked.
 */
export interface AuthContext {
  info: AuthInfo | undefined;
}

/** etcd's estimate of a put's cost beyond its key and value (quota.go). */
const KV_OVERHEAD = 256;
/** etcd refuses new proposals while applying lags committing by more than this (v3_server.go). */
const MAX_APPLY_GAP = 5000;


export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export type { Member };

export interface MemberStatus {
  dbSize: number;
  dbSizeInUse: number;
  leader: bigint;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  alarms: Alarm[];
  isLearner: boolean;
}

export interface ServerGauges {
  hasLeader: boolean;
  isLeader: boolean;
  isLearner: boolean;
  leaderChanges: number;
  committed: number;
  applied: number;
  pendingProposals: number;
  quota: number;
  dbSize: number;
  dbSizeInUse: number;
  currentRevision: number;
  compactRevision: number;
  keys: () => number;
  watchers: number;
  /** Proposals that timed out or could not be proposed (etcd's proposalsFailed). */
  proposalsFailed: number;
  /** Applies slower than --experimental-warning-apply-duration (etcd's slowApplies). */
  slowApplies: number;
}

export interface ServerHooks {
  /** The logger (src/log): each module below logs through it under its own name. None: nothing is logged. */
  logger?: Logger;
  /** The server cannot go on (the WAL or the backend failed to write): it has stopped serving. */
  onFatal?: (err: Error) => void;
  /**
   * This member was removed from the cluster (its removal applied here, or a peer refused it as
   * removed): it has stopped serving, as etcd does ("the member has been permanently removed").
   */
  onRemoved?: () => void;
  /** The auto-compactor's clock (tests). */
  autoCompactionClock?: Clock;
  /** The listeners of --listen-peer-urls, bound before the data dir was opened (main.ts). */
  peerListeners?: BoundListener[];
}

/**
 * The request pipeline of a member: checks and quota, then the write path of DESIGN.md: propose to
 * raft → the entry is committed by a quorum (each member's WAL makes it durable first) → applied to
 * mvcc on every member → the member that proposed it answers. Linearizable reads wait for a ReadIndex
 * round; serializable ones are served from what this member has applied. The backend is committed in
 * batches with the applied index (the consistent index); a restart replays the log after it.
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly kv: KV;
  readonly watchHub: WatchHub;
  readonly membership: Membership;
  private readonly applier: Applier;
  private readonly waiters = new ProposalWaiters();
  private readonly readIndexer: ReadIndexer;
  private readonly ids: RequestIdGenerator;
  private readonly committer: BackendCommitter;
  private readonly leases: LeaseForwarder;
  private readonly reconfig: Reconfiguration;
  private driver!: RaftDriver;
  /** Set once this member's removal is known: it stops serving. */
  private removed = false;
  private removalTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private failed: Error | undefined;
  /** Set while the backend is swapped (defragment, a snapshot from the leader): nothing may read it meanwhile. */
  private gate: Promise<void> | undefined;
  private readonly quota: number;
  private autoCompactor: { run(): void; stop(): Promise<void> } | undefined;
  /** The logger injected at start (the API layer logs through it, under its own module names). */
  readonly logger: Logger;
  /** This module's Log (the API layer logs internal errors through it). */
  readonly log: Log;
  private readonly slowLog: Log;
  /** The index of the last entry applied here (the consistent index committed with the backend). */
  private applied: number;
  /** Reads waiting for the applied index to reach theirs, in no particular order (few: one per read round). */
  private appliedWaiters: { index: number; resolve: () => void }[] = [];
  private readonly sweepTimer: NodeJS.Timeout;
  /** Writes' permission checks before proposing (the applier makes them again). */
  private readonly writeChecks: WriteAuthChecks;
  private readonly requestTimeoutMs: number;
  private leaderElectedAt = 0;
  private leaderChanges = 0;
  private proposalsFailed = 0;
  /** The initial corruption check is running: raft messages from peers are dropped meanwhile. */
  private checkingInitialHash = false;
  private slowApplies = 0;
  private lastLeader = 0n;
  private publishTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly cfg: ServerConfig,
    readonly backend: Backend,
    readonly store: KVStore,
    readonly alarms: AlarmStore,
    readonly lessor: Lessor,
    /** Users, roles, permissions and the auth revision (src/auth), changed by the applier only. */
    readonly authStore: AuthStore,
    membership: Membership,
    consistentIndex: number,
    private readonly hooks: ServerHooks,
    log: Log,
  ) {
    this.memberId = membership.localId;
    this.clusterId = membership.clusterId;
    this.membership = membership;
    this.kv = new KV(store);
    this.watchHub = new WatchHub(store);
    this.logger = hooks.logger ?? silentLogger;
    this.applier = new Applier(this.kv, alarms, lessor, authStore, this.logger.module('server/applier.ts'));
    this.writeChecks = new WriteAuthChecks(authStore, lessor);
    this.applied = consistentIndex;
    this.ids = new RequestIdGenerator(this.memberId, Date.now());
    this.nextLeaseId = ((this.memberId & 0xffffn) << 48n) | ((BigInt(Date.now()) << 8n) & ((1n << 48n) - 1n));
    this.log = log;
    this.slowLog = this.logger.module('server/slow-log.ts');
    this.quota = effectiveQuota(cfg);
    // etcd's ReqTimeout: 5 s for queueing and disk, plus two election timeouts for an election.
    this.requestTimeoutMs = 5000 + 2 * cfg.electionTimeoutMs;
    this.readIndexer = new ReadIndexer(
      {
        request: (ctx) => this.driver.readIndex(ctx),
        waitApplied: (index) => this.waitApplied(index),
        timeoutMs: this.requestTimeoutMs,
        retryMs: 500,
        // Two rounds in flight: a read waits at most for the round after the current one to start.
        maxRounds: 2,
      },
      BigInt.asUintN(64, this.memberId << 48n),
    );
    const committerLog = this.logger.module('server/backend-committer.ts');
    this.committer = new BackendCommitter(backend, cfg, {
      consistentIndex: () => this.applied,
      raiseNoSpace: () => this.raiseNoSpace(),
      fail: (err) => this.fail(err),
      log: committerLog,
    });
    this.leases = new LeaseForwarder({
      lessor,
      isLeader: () => this.driver.isLeader,
      leader: () => this.driver.lead,
      request: (to, kind, body, timeoutMs) => {
        if (!this.driver.transport) return Promise.reject(Errors.noLeader);
        return this.driver.transport.request(to, kind, body, timeoutMs);
      },
      waitLeader: (timeoutMs) => this.waitLeader(timeoutMs),
      timeoutMs: this.requestTimeoutMs,
    });
    this.reconfig = new Reconfiguration({
      memberId: this.memberId,
      membership,
      strictReconfigCheck: cfg.strictReconfigCheck,
      requestTimeoutMs: this.requestTimeoutMs,
      heartbeatMs: cfg.heartbeatIntervalMs,
      log: this.logger.module('server/reconfiguration.ts'),
      lead: () => this.driver.lead,
      raftStatus: () => this.driver.node.status(),
      connectedSince: (id) => {
        const t = this.driver.transport;
        return t?.isConnected(id) ? t.connectedSince(id) : undefined;
      },
      proposeConfChange: (cc) => this.driver.proposeConfChange(cc),
      transferLeader: (to) => this.driver.transferLeader(to),
      nextId: () => RequestIdGenerator.toBigInt({ prefix: this.ids.prefix, seq: this.ids.next() }),
      forwardPromote: (leader, id) => this.forwardPromote(leader, id),
      stopped: () => this.closed || !!this.failed,
    });
    // Expired leases are revoked through the log by the leader, like a client's revoke.
    this.leaseTimer = setInterval(() => this.revokeExpiredLeases(), 500);
    this.leaseTimer.unref();
    if (cfg.leaseCheckpointEnabled && cfg.leaseCheckpointIntervalMs > 0) {
      this.checkpointTimer = setInterval(() => this.checkpointLeases(), cfg.leaseCheckpointIntervalMs);
      this.checkpointTimer.unref();
    }
    this.sweepTimer = setInterval(() => this.sweepProposals(), 500);
    this.sweepTimer.unref();
  }

  static async open(cfg: ServerConfig, hooks: ServerHooks = {}): Promise<EtcdServer> {
    const logger = hooks.logger ?? silentLogger;
    const log = logger.module('server/etcd-server.ts');
    let server: EtcdServer | undefined;
    // One process per data dir (and per --wal-dir when it is elsewhere), before anything is read or written.
    let lock = await lockDataDir(cfg.dataDir);
    if (cfg.walDir) {
      try {
        const walLock = await lockDataDir(cfg.walDir);
        const dirLock = lock;
        lock = { file: dirLock.file, release: async () => void (await Promise.all([walLock.release(), dirLock.release()])) };
      } catch (err) {
        await lock.release();
        throw err;
      }
    }
    let m: Awaited<ReturnType<typeof openMember>>;
    let peerTls: PeerTls | undefined;
    try {
      // Peer TLS first: a joining member asks the others for the members over it.
      peerTls = await preparePeerTls(cfg, logger.module('server/peer-tls.ts'));
      m = await openMember(cfg, logger, (err) => err && server?.raiseNoSpace(), peerTls);
    } catch (err) {
      await lock.release();
      throw err;
    }
    const { backend } = m;
    let authStore: AuthStore | undefined;
    try {
      const lessor = await Lessor.open(backend);
      // Only the leader expires leases: every member starts as if it were not the leader.
      lessor.demote();
      const mvccLog = logger.module('mvcc/kv-store.ts');
      const store = await KVStore.open(backend, {
        compaction: { batchLimit: cfg.compactionBatchLimit, sleepMs: cfg.compactionSleepIntervalMs },
        leases: lessor,
        log: (msg, fields) => mvccLog('info', msg, fields),
        // An interrupted compaction resumes once the server's commit hooks are in place.
        deferResume: true,
      });
      const alarms = await AlarmStore.open(backend);
      // --auth-token: a bad value stops the start with etcd's words ("auth: invalid auth options").
      const tokenProvider = await newTokenProvider(cfg.authToken, { ttlSeconds: cfg.authTokenTtlS, log: logger.module('auth/tokens.ts') });
      authStore = await AuthStore.open(backend, { bcryptCost: cfg.bcryptCost, tokenProvider, log: logger.module('auth/auth-store.ts') });
      const membership = new Membership(m.memberId, m.clusterId, backend);
      await membership.load();
      const s = (server = new EtcdServer(cfg, backend, store, alarms, lessor, authStore, membership, m.consistentIndex, hooks, log));
      s.dataDirLock = lock;
      s.peerTls = peerTls;
      await s.loadRejectedConfChanges();
      const transport = await s.openTransport(m.initialMembers);
      s.driver = new RaftDriver({
        id: m.memberId,
        node: m.node,
        storage: m.storage,
        wal: m.wal,
        transport,
        heartbeatMs: cfg.heartbeatIntervalMs,
        snapshotCount: cfg.snapshotCount,
        // etcd keeps 5000 whatever the snapshot count: with fewer, a follower a little behind under load is
        // sent snapshot after snapshot, and what was proposed through it is answered only by its timeout.
        catchUpEntries: cfg.snapshotCatchUpEntries,
        durableBackend: backend.kind !== 'memory',
        confState: m.confState,
        // A new cluster's members elect without waiting a whole election timeout first.
        // A member joining a running cluster does not: it would campaign before the leader reaches it, and
        // its higher term would depose the leader.
        advanceTicks: m.fresh && !m.joining ? Math.max(0, Math.round(cfg.electionTimeoutMs / cfg.heartbeatIntervalMs) - 1) : 0,
        hooks: {
          apply: (entries) => s.applyEntries(entries),
          onSoftState: (ss, term) => s.onSoftState(ss, term),
          onReadStates: (rs) => s.readIndexer.onReadStates(rs),
          installSnapshot: (file, meta) => s.installSnapshot(file, meta),
          dumpSnapshot: () => s.dumpForFollower(),
          backendDurable: () => s.committer.commitNow(),
          gate: () => s.gate,
          onFatal: (err) => s.fail(err),
          log: logger.module('raft/driver.ts'),
        },
      });
      s.wal = m.wal;
      store.resumeCompaction();
      // Apply what the log holds beyond the backend, and make a single member leader, before serving.
      // (The log's end is read before: becoming leader appends an entry of its own.)
      const walEnd = m.storage.lastIndex();
      // etcd checks a restarted member's data against its peers' before it runs raft or serves anyone.
      if (cfg.initialCorruptCheck && !m.fresh) {
        s.checkingInitialHash = true;
        try {
          await s.checkInitialHashKV();
        } finally {
          s.checkingInitialHash = false;
        }
      }
      await s.driver.start();
      if (walEnd > m.consistentIndex) log('info', `replayed the WAL from index ${m.consistentIndex + 1} to ${walEnd}`);
      const compactorLog = logger.module('server/auto-compactor.ts');
      s.autoCompactor = newAutoCompactor(
        { rev: () => s.store.currentRev, compact: (rev) => s.compact(rev, false) },
        {
          mode: cfg.autoCompactionMode,
          retention: parseCompactionRetention(cfg.autoCompactionMode, cfg.autoCompactionRetention),
          revisionIntervalMs: cfg.autoCompactionRevisionIntervalMs,
          clock: hooks.autoCompactionClock,
          log: (msg, fields) => compactorLog('info', msg, fields),
        },
      );
      if (s.driver.isLeader) s.autoCompactor?.run();
      // Removed while it was down, and its own log says so: it stops (the others refuse it anyway).
      if (membership.isRemoved(m.memberId)) s.onRemovedFromCluster('its own log records its removal');
      else s.publish();
      return s;
    } catch (err) {
      authStore?.close();
      await server?.driver?.stop().catch(() => {});
      await server?.driver?.transport?.close().catch(() => {});
      await backend.close().catch(() => {});
      await m.wal.close().catch(() => {});
      await lock.release().catch(() => {});
      throw err;
    }
  }

  private dataDirLock: DataDirLock | undefined;

  private wal!: import('../raft/wal/wal').Wal;
  /** Peer TLS (preparePeerTls), for the transport. */
  private peerTls: PeerTls | undefined;

  /** The peer transport, when this member has (or may get) peers, on --listen-peer-urls. */
  private async openTransport(initial: Member[]): Promise<PeerTransport | undefined> {
    const peers = (initial.length ? initial : this.membership.list()).filter((p) => p.id !== this.memberId);
    if (!peers.length && !this.cfg.listenPeerUrls) return undefined;
    const urls = this.cfg.listenPeerUrls ?? this.cfg.initialAdvertisePeerUrls.map((u) => new URL(u));
    const transport = await PeerTransport.listen({
      selfId: this.memberId,
      clusterId: this.clusterId,
      listenUrls: urls,
      // Bound before the data dir was opened, when they are the listen URLs.
      listeners: this.cfg.listenPeerUrls ? this.hooks.peerListeners : undefined,
      tls: this.peerTls,
      snapshotDir: snapDirOf(this.cfg),
      // Held off while the initial corruption check runs: the member takes part in raft only once its
      // data is known good (etcd serves its peer handler only after the check). Raft resends.
      onMessages: (_from, msgs) => {
        if (!this.checkingInitialHash) this.driver.step(msgs);
      },
      onSnapshot: (msg, file) => {
        if (this.checkingInitialHash) void rm(file, { force: true }).catch(() => {});
        else void this.keepReceivedSnapshot(msg, file);
      },
      onRequest: (from, kind, body) => this.onPeerRequest(from, kind, body),
      onUnreachable: (id) => this.driver.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => this.driver.snapshotSent(id, ok),
      isRemoved: (id) => this.membership.isRemoved(id),
      onRemoved: () => this.onRemovedFromCluster('a peer refused it as removed'),
      membersInfo: () => this.membersInfo(),
      log: this.logger.module('raft/transport'),
      limits: { maxFrameBytes: 2 * Math.max(1024 * 1024, this.cfg.maxRequestBytes) + (1 << 20) },
      idleTimeoutMs: Math.max(5000, 5 * this.cfg.electionTimeoutMs),
    });
    for (const p of peers) {
      try {
        transport.addPeer(p.id, p.peerUrls);
      } catch (err) {
        this.log('error', 'cannot reach a member at its peer URLs', { 'remote-peer-id': idHex(p.id), 'peer-urls': p.peerUrls, error: (err as Error).message });
      }
    }
    return transport;
  }

  /** A snapshot from the leader: under its index's name (where a restart looks for it), then to raft. */
  private async keepReceivedSnapshot(msg: import('../raft/core/types').Message, file: string): Promise<void> {
    const index = msg.snapshot?.metadata.index ?? 0;
    const dest = receivedSnapshotFile(this.cfg, index);
    try {
      await rename(file, dest);
    } catch (err) {
      this.log('warn', 'cannot keep a received snapshot', { file, error: (err as Error).message });
      await rm(file, { force: true });
      return;
    }
    this.driver.receiveSnapshot(msg, dest);
  }

  private onPeerRequest(from: bigint, kind: string, body: Buffer): Promise<Buffer> {
    if (kind.startsWith('lease-')) return this.leases.serve(kind, body);
    if (kind === 'hashkv' && body.length === 8) return this.answerPeerHashKV(Number(body.readBigInt64BE(0)));
    if (kind === 'member-promote' && body.length === 8) {
      return Promise.resolve()
        .then(() => this.reconfig.promoteHere(body.readBigUInt64BE(0)))
        .then((members) => Buffer.from(encodeMembers(members)));
    }
    return Promise.reject(new Error(`unknown peer request "${kind}" from ${from.toString(16)}`));
  }

  // --- the initial corruption check (--experimental-initial-corrupt-check) ---

  /** A peer's hashkv request (etcd's /members/hashkv on the peer URL): the hash at rev, or etcd's error. */
  private async answerPeerHashKV(rev: number): Promise<Buffer> {
    await this.ready();
    try {
      const r = await hashKV(this.store, rev);
      return Buffer.from(JSON.stringify({ hash: r.hash, compactRevision: r.compactRevision, revision: r.revision }));
    } catch (err) {
      return Buffer.from(JSON.stringify({ error: (err as Error).message }));
    }
  }

  /**
   * etcd's CheckInitialHashKV: on a restart (not a new member), before raft runs and before clients are
   * served, this member's KV hash at its revision is compared with each peer's at the same revision. A
   * different hash at the same compact revision refuses the start ("found data inconsistency with
   * peers"); a peer that cannot be asked, lags, or has compacted further is only warned about.
   */
  private async checkInitialHashKV(): Promise<void> {
    const local = idHex(this.memberId);
    const timeoutMs = this.requestTimeoutMs;
    this.log('info', 'starting initial corruption check', { 'local-member-id': local, timeout: `${timeoutMs / 1000}s` });
    const mine = await hashKV(this.store, 0);
    const rev = mine.revision;
    const crev = mine.compactRevision;
    const localFields = { 'local-member-id': local, 'local-member-revision': rev, 'local-member-compact-revision': crev, 'local-member-hash': mine.hash };
    const body = Buffer.alloc(8);
    body.writeBigInt64BE(BigInt(rev));
    let mismatch = 0;
    const peers = this.membership.list().filter((p) => p.id !== this.memberId);
    await Promise.all(
      peers.map(async (p) => {
        const peer = { 'remote-peer-id': idHex(p.id), 'remote-peer-endpoints': p.peerUrls };
        let answer: { hash?: number; compactRevision?: number; revision?: number; error?: string };
        try {
          answer = JSON.parse((await this.peerRequestOnceConnected(p.id, 'hashkv', body, timeoutMs)).toString('utf8'));
        } catch (err) {
          this.log('warn', 'failed hash kv request', { 'local-member-id': local, 'requested-revision': rev, 'remote-peer-endpoint': p.peerUrls[0], error: (err as Error).message });
          return;
        }
        if (answer.error !== undefined) {
          this.log('warn', 'failed hash kv request', { 'local-member-id': local, 'requested-revision': rev, 'remote-peer-endpoint': p.peerUrls[0], error: answer.error });
          if (answer.error === Errors.futureRev.message) this.log('warn', 'cannot fetch hash from slow remote peer', { ...localFields, ...peer, error: answer.error });
          else if (answer.error === Errors.compacted.message) this.log('warn', 'cannot fetch hash from remote peer; local member is behind', { ...localFields, ...peer, error: answer.error });
          return;
        }
        if (answer.hash === mine.hash) return;
        const fields = { ...localFields, ...peer, 'remote-peer-revision': answer.revision, 'remote-peer-compact-revision': answer.compactRevision, 'remote-peer-hash': answer.hash };
        if (answer.compactRevision === crev) {
          this.log('warn', 'found different hash values from remote peer', fields);
          mismatch++;
        } else {
          this.log('warn', 'found different compact revision values from remote peer', fields);
        }
      }),
    );
    if (mismatch > 0) throw new Error(`${local} found data inconsistency with peers`);
    this.log('info', 'initial corruption checking passed; no corruption', { 'local-member-id': local });
  }

  /** A request to a peer once its connection is up (the transport refuses one before), within timeoutMs. */
  private async peerRequestOnceConnected(id: bigint, kind: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    const t = this.driver.transport;
    if (!t) throw new Error('no peer transport');
    const deadline = Date.now() + timeoutMs;
    while (!t.isConnected(id)) {
      if (Date.now() >= deadline) throw new Error(`not connected to peer ${idHex(id)} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return t.request(id, kind, body, Math.max(1, deadline - Date.now()));
  }

  // --- raft state ---

  get raftTerm(): number {
    return this.driver.term;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get commitIndex(): number {
    return this.driver.node.commitIndex;
  }
  /** The leader's member ID, 0n when there is none. */
  get leader(): bigint {
    return this.driver.lead;
  }
  get isLeader(): boolean {
    return this.driver.isLeader;
  }

  header(revision = this.store.currentRev): ResponseHeader {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.driver.term };
  }

  members(): Member[] {
    return this.membership.list();
  }

  private onSoftState(ss: SoftState, _term: number): void {
    const wasLeader = this.lessor.primary;
    const previous = this.lastLeader;
    if (ss.lead !== 0n && ss.lead !== previous) this.leaderChanges++;
    this.lastLeader = ss.lead;
    const isLeader = ss.raftState === StateType.Leader;
    if (ss.lead !== 0n) this.leaderElectedAt = Date.now();
    // A read index round in flight when a new leader takes over fails with etcd's "leader changed"
    // (clients retry it); one sent while there was no leader went nowhere, and is sent again.
    if (ss.lead !== 0n && ss.lead !== previous) {
      if (previous !== 0n) this.readIndexer.onLeaderChange();
      else this.readIndexer.resend();
    }
    if (isLeader && !wasLeader) {
      // Leases live on through the handover: their remaining TTL plus an election timeout (etcd's Promote).
      this.lessor.promote(this.cfg.electionTimeoutMs);
      if (this.autoCompactor) this.autoCompactor.run();
    } else if (!isLeader && wasLeader) {
      this.lessor.demote();
      void this.autoCompactor?.stop();
    }
  }

  /** Resolves once a leader is known (for a follower forwarding to it); rejects after timeoutMs. */
  private async waitLeader(timeoutMs: number): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    while (this.driver.lead === 0n) {
      if (Date.now() >= deadline) throw Errors.timeout;
      if (this.closed || this.failed) throw Errors.stopped;
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.driver.lead;
  }

  // --- KV ---

  /**
   * What a read must wait for first: nothing (undefined) for a serializable read or where the applied
   * state is known current, else a ReadIndex round. After it, range(req, true) / rangeStored(req, true).
   */
  readBarrier(serializable: boolean): Promise<void> | undefined {
    if (serializable || this.readable()) return undefined;
    return this.readIndexer.read();
  }

  /** A range; with linearized, the caller waited for readBarrier already. */
  range(req: RangeRequest, linearized = false, auth?: AuthContext): RangeResponse | Promise<RangeResponse> {
    if (this.gate) return this.gate.then(() => this.range(req, linearized, auth));
    this.assertServing();
    checkRange(req);
    if (auth) this.deny(this.authStore.isRangePermitted(auth.info, req.key, req.rangeEnd));
    if (!linearized && !req.serializable && !this.readable()) return this.readIndexer.read().then(() => this.range(req, true, auth));
    const start = performance.now();
    const r = this.kv.range(req);
    if (isSlow(start, this.cfg.warningApplyDurationMs)) {
      this.warnSlow(start, 'read-only range ', describeRequest({ range: req }), `range_response_count:${r.kvs.length} count:${r.count}`);
    }
    return r;
  }

  /**
   * A range answered with the KeyValues' stored bytes (see KV.rangeStored); undefined when the request
   * needs the general path: a linearizable read that must wait for a read index, or a defragment.
   */
  rangeStored(req: RangeRequest, linearized = false, auth?: AuthContext): StoredRangeResponse | undefined {
    if (this.gate) return undefined;
    this.assertServing();
    checkRange(req);
    if (auth) this.deny(this.authStore.isRangePermitted(auth.info, req.key, req.rangeEnd));
    if (!linearized && !req.serializable && !this.readable()) return undefined;
    const start = performance.now();
    const r = this.kv.rangeStored(req);
    if (r && isSlow(start, this.cfg.warningApplyDurationMs)) {
      this.warnSlow(start, 'read-only range ', describeRequest({ range: req }), `range_response_count:${r.kvs.length} count:${r.count}`);
    }
    return r;
  }

  /**
   * Whether a linearizable read may be served from the applied state at once: only on the sole voter of
   * a cluster, which is the leader and has applied everything committed (nobody else can have a newer
   * state). Every other member asks for a read index.
   */
  private readable(): boolean {
    const cs = this.driver.confState;
    return this.driver.isLeader && cs.voters.length === 1 && this.applied >= this.driver.node.commitIndex;
  }

  /** Waits for a read index: what a linearizable read outside the KV service needs first. */
  linearizableRead(): Promise<void> {
    if (this.readable()) return Promise.resolve();
    return this.readIndexer.read();
  }

  put(req: PutRequest, auth?: AuthContext): Promise<PutResponse> {
    this.assertServing();
    checkPut(req);
    if (auth) this.deny(this.writeChecks.put(auth.info, req));
    this.checkQuota(KV_OVERHEAD + req.key.length + req.value.length);
    return this.propose({ put: req }, auth) as Promise<PutResponse>;
  }

  deleteRange(req: DeleteRangeRequest, auth?: AuthContext): Promise<DeleteRangeResponse> {
    this.assertServing();
    checkDelete(req);
    if (auth) this.deny(this.writeChecks.deleteRange(auth.info, req));
    return this.propose({ deleteRange: req }, auth) as Promise<DeleteRangeResponse>;
  }

  txn(req: TxnRequest, auth?: AuthContext): Promise<TxnResponse> | TxnResponse {
    if (this.gate) return this.gate.then(() => this.txn(req, auth));
    this.assertServing();
    checkTxn(req, this.cfg.maxTxnOps);
    if (auth) this.deny(this.writeChecks.txn(auth.info, req));
    if (isReadOnly(req)) {
      // etcd serves read-only txns without a proposal; linearizable unless every range is serializable.
      if (!txnSerializable(req) && !this.readable()) return this.readIndexer.read().then(() => this.kv.txn(req));
      return this.kv.txn(req);
    }
    this.checkQuota(txnCost(req));
    return this.propose({ txn: req }, auth) as Promise<TxnResponse>;
  }

  /** Compaction; with physical, answers only once the old revisions are gone from the backend. */
  async compact(revision: number, physical: boolean): Promise<number> {
    this.assertServing();
    const r = (await this.propose({ compaction: { revision, physical } })) as { revision: number; compacted: Promise<void> };
    if (physical) await r.compacted;
    return r.revision;
  }

  async alarm(req: AlarmRequest): Promise<Alarm[]> {
    this.assertServing();
    if (req.action === AlarmAction.GET) {
      return this.alarms.list().filter((a) => req.alarm === AlarmType.NONE || a.alarm === req.alarm);
    }
    return ((await this.propose({ alarm: req })) as { alarms: Alarm[] }).alarms;
  }

  /** Active alarms (Status, /health). */
  activeAlarms(): Alarm[] {
    return this.alarms.list();
  }

  // --- watch (the hub over the store's change feed) ---

  currentRevision(): number {
    return this.store.currentRev;
  }

  /**
   * Why a client may not watch [key, end), or undefined if it may (etcd's isWatchPermitted: read
   * permission over the range). The watch service asks before creating a watcher; refused, etcd answers
   * the create with a canceled response whose reason is the error's gRPC words.
   */
  watchPermission(auth: AuthContext | undefined, key: Buffer, end: Buffer | undefined): EtcdError | undefined {
    if (!auth) return undefined;
    return this.authStore.isRangePermitted(auth.info, key, end);
  }

  /** Throws etcd's error unless the client may read [key, end) (lock and election reads). */
  checkReadPermission(auth: AuthContext | undefined, key: Buffer, end: Buffer | undefined): void {
    if (auth) this.deny(this.authStore.isRangePermitted(auth.info, key, end));
  }

  watch(id: bigint, key: string, end: string | undefined, startRev: number, opts: WatchOptions, sink: WatchSink): Watcher {
    return this.watchHub.watch(id, key, end, startRev, opts, sink);
  }

  cancelWatch(w: Watcher): void {
    this.watchHub.cancel(w);
  }

  requestWatchProgress(w: Watcher): void {
    this.watchHub.requestProgress(w);
  }

  resumeWatchers(ws: Iterable<Watcher>): void {
    this.watchHub.resume(ws);
  }

  /** The key's value just before modRevision (a watch event's prev_kv); undefined if none or compacted. */
  previousKv(key: Buffer, modRevision: number): KeyValue | undefined {
    try {
      const r = this.store.rangeKeys(key, undefined, this.store.currentRev, { limit: 1, rev: modRevision - 1, countOnly: false });
      return r.kvs[0];
    } catch {
      return undefined; // compacted since: etcd sends no prev_kv then
    }
  }

  // --- leases ---

  private nextLeaseId: bigint;
  private readonly leaseTimer: NodeJS.Timeout;
  private checkpointTimer: NodeJS.Timeout | undefined;

  async leaseGrant(ttl: number, id: bigint): Promise<{ leaseId: bigint; ttl: number }> {
    this.assertServing();
    if (id === 0n) {
      // As etcd's id generator: member bits on top, time below, never negative, never in use.
      do this.nextLeaseId = (this.nextLeaseId + 1n) & ((1n << 63n) - 1n);
      while (this.nextLeaseId === 0n || this.lessor.exists(this.nextLeaseId));
      id = this.nextLeaseId;
    }
    return (await this.propose({ leaseGrant: { id, ttl } })) as { leaseId: bigint; ttl: number };
  }

  async leaseRevoke(id: bigint, auth?: AuthContext): Promise<number> {
    this.assertServing();
    // etcd's checkLeasePuts: write permission on every key attached to the lease.
    if (auth) this.deny(this.writeChecks.leasePuts(auth.info, id));
    return ((await this.propose({ leaseRevoke: { id } }, auth)) as { revision: number }).revision;
  }

  /** Keep-alive: the leader renews (no log entry, as etcd); a follower forwards to it. Returns the TTL. */
  leaseRenew(id: bigint): number | Promise<number> {
    this.assertServing();
    return this.leases.renew(id);
  }

  /** TimeToLive: the leader's view (a follower asks it); undefined for an unknown lease. */
  leaseTimeToLive(id: bigint, withKeys: boolean, auth?: AuthContext): Promise<{ ttl: number; grantedTtl: number; keys: Buffer[] } | undefined> {
    this.assertServing();
    // etcd's checkLeaseTimeToLive: read permission on every key attached to the lease.
    if (auth) for (const k of this.lessor.leases.get(id)?.keys ?? []) this.deny(this.authStore.isRangePermitted(auth.info, Buffer.from(k, 'latin1')));
    return this.leases.timeToLive(id, withKeys);
  }

  /** Every lease ID this member knows (applied state). */
  leaseIds(): bigint[] {
    return [...this.lessor.leases.keys()];
  }

  private revokeExpiredLeases(): void {
    if (this.closed || this.failed || !this.driver?.isLeader) return;
    // etcd revokes at most 1000 expired leases per second; the log's group commit takes more, so
    // Plinth allows 5000 per second (2500 per half-second tick), keeping expiry on time under load.
    for (const lease of this.lessor.expired(2500)) {
      // If the revoke does not get through, look at the lease again in a while.
      this.lessor.retryLater(lease, 3000);
      // Counted once the revoke is through, as etcd's leaseExpired.
      this.propose({ leaseRevoke: { id: lease.id } }, this.asRoot()).then(() => void this.lessor.metrics.expired.v++, () => {});
    }
  }

  private checkpointLeases(): void {
    if (this.closed || this.failed || !this.driver?.isLeader || this.lessor.leases.size === 0) return;
    const checkpoints = [...this.lessor.leases.values()].map((l) => ({ id: l.id, remainingTtl: Math.max(1, this.lessor.remainingSeconds(l)) }));
    for (let i = 0; i < checkpoints.length; i += 1000) {
      this.propose({ leaseCheckpoint: { checkpoints: checkpoints.slice(i, i + 1000) } }).catch(() => {});
    }
  }

  // --- auth (etcd's EtcdServer auth calls: every one through the log, reads too) ---

  /** AuthDisable; a no-op while auth is off. */
  authDisable(auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authDisable', {}, auth);
  }

  /** UserAdd: the password is hashed here, before proposing (the hash travels in the entry). */
  async userAdd(req: UserAddRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.proposeAuth('authUserAdd', await this.authStore.prepareUserAdd(req), auth);
  }

  userDelete(req: NameRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authUserDelete', req, auth);
  }

  async userChangePassword(req: UserChangePasswordRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.proposeAuth('authUserChangePassword', await this.authStore.prepareUserChangePassword(req), auth);
  }

  userGrantRole(req: UserGrantRoleRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authUserGrantRole', req, auth);
  }

  userRevokeRole(req: UserRevokeRoleRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authUserRevokeRole', req, auth);
  }

  userGet(req: NameRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authUserGet', req, auth);
  }

  userList(auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authUserList', {}, auth);
  }

  roleAdd(req: NameRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleAdd', req, auth);
  }

  roleDelete(req: RoleRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleDelete', req, auth);
  }

  roleGet(req: RoleRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleGet', req, auth);
  }

  roleList(auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleList', {}, auth);
  }

  roleGrantPermission(req: RoleGrantPermissionRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleGrantPermission', req, auth);
  }

  roleRevokePermission(req: RoleRevokePermissionRequest, auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authRoleRevokePermission', req, auth);
  }

  /** AuthEnable: needs the root user with the root role (etcd's errors otherwise). */
  authEnable(auth?: AuthContext): Promise<Record<string, unknown>> {
    return this.proposeAuth('authEnable', {}, auth);
  }

  /**
   * Authenticate, as etcd's EtcdServer.Authenticate: the password is checked first (bcrypt, off the event
   * loop), then the request goes through the log (a simple token's random part chosen here, its index the
   * entry's); retried when the auth store changed while the password was checked.
   */
  async authenticate(name: string, password: string): Promise<{ token: string }> {
    for (;;) {
      this.assertServing();
      const checked = await this.authStore.checkPassword(name, password);
      const r = (await this.propose({ auth: { kind: 'authenticate', req: { name, simpleToken: this.authStore.genTokenPrefix() } } })) as { authenticated: Promise<{ token: string }> };
      const out = await r.authenticated;
      if (checked === this.authStore.revision) return out;
      this.log('info', 'revision when password checked became stale; retrying');
    }
  }

  /** Whether auth is on. */
  get authEnabled(): boolean {
    return this.authStore.isAuthEnabled();
  }

  /**
   * A client request's auth context from its token (etcd's AuthInfoFromCtx): undefined while auth is off
   * (nothing to check); a token that is not valid is refused with "etcdserver: invalid auth token".
   * Without a token, a verified client certificate's common name stands for the user (etcd's
   * AuthInfoFromTLS, with --client-cert-auth; the API layer passes it), at the store's revision.
   */
  authContext(token: string | undefined, commonName?: string): Promise<AuthContext | undefined> | undefined {
    if (!this.authStore.isAuthEnabled()) {
      // etcd verifies a token even while auth is off: a simple token is gone once auth is disabled, so a
      // client still sending one is told so (clientv3 then authenticates again and learns auth is off).
      return token ? this.authStore.authInfoFromToken(token).then(() => undefined) : undefined;
    }
    if (!token && commonName) return Promise.resolve({ info: { username: commonName, revision: this.authStore.revision } });
    if (!token) return Promise.resolve({ info: undefined });
    return this.authStore.authInfoFromToken(token).then((info) => ({ info }));
  }

  private deny(err: EtcdError | undefined): void {
    if (err) throw err;
  }

  /** etcd's IsAdminPermitted: maintenance, member and auth management calls need the root role. */
  private checkAdmin(auth: AuthContext | undefined): void {
    if (auth) this.deny(this.authStore.isAdminPermitted(auth.info));
  }

  /**
   * The server's own requests that the auth applier checks (an expired lease's revoke), while auth is on:
   * as root at the store's revision, as etcd's authStore.WithRoot.
   */
  private asRoot(): AuthContext | undefined {
    if (!this.authStore.isAuthEnabled()) return undefined;
    return { info: { username: ROOT_USER, revision: this.authStore.revision } };
  }

  /** One auth request through the log; its response fields once applied here. */
  private async proposeAuth(kind: AuthKind, req: object, auth?: AuthContext): Promise<Record<string, unknown>> {
    this.assertServing();
    if (auth && this.authStore.isAuthEnabled()) {
      const info = auth.info;
      const notAdmin = this.authStore.isAdminPermitted(info);
      if (ADMIN_AUTH_KINDS.has(kind)) this.deny(notAdmin);
      // etcd's authApplierV3.UserGet / RoleGet: a user may read itself and the roles it has.
      else if (kind === 'authUserGet' && notAdmin && (req as { name?: string }).name !== info?.username) throw notAdmin;
      else if (kind === 'authRoleGet' && notAdmin && !this.authStore.hasRole(info?.username ?? '', (req as { role?: string }).role ?? '')) throw notAdmin;
    }
    return ((await this.propose({ auth: { kind, req: req as Record<string, unknown> } }, auth)) as { auth: Record<string, unknown> }).auth;
  }

  // --- maintenance ---

  /** Gives the backend's free space back; reads and applies wait meanwhile, as etcd's defrag blocks. */
  defragment(auth?: AuthContext): Promise<void> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.hold(() => this.backend.defragment());
  }

  /** Maintenance.Status, as etcd fills it. */
  async status(): Promise<MemberStatus> {
    this.assertServing();
    // The engine's stats are unavailable while a defragment swaps it.
    await this.ready();
    return {
      dbSize: this.backend.sizeBytes(),
      dbSizeInUse: this.backend.sizeInUseBytes(),
      leader: this.driver.lead,
      raftIndex: this.driver.node.commitIndex,
      raftTerm: this.driver.term,
      raftAppliedIndex: this.applied,
      alarms: this.alarms.list(),
      isLearner: this.membership.localIsLearner,
    };
  }

  /** Maintenance.Hash: the backend's hash and the revision read after it. */
  async hash(auth?: AuthContext): Promise<{ hash: number; revision: number }> {
    this.assertServing();
    this.checkAdmin(auth);
    await this.ready();
    const hash = await hashBackend(this.backend);
    return { hash, revision: this.store.currentRev };
  }

  /** Maintenance.HashKV at a revision (0 = current). */
  async hashKV(revision: number, auth?: AuthContext): Promise<{ hash: number; compactRevision: number; revision: number }> {
    this.assertServing();
    this.checkAdmin(auth);
    await this.ready();
    return hashKV(this.store, revision);
  }

  /**
   * etcd's /health check: no active alarm, a leader known, and a linearizable read through the
   * server that finishes within timeoutMs.
   */
  async healthy(timeoutMs: number): Promise<boolean> {
    if (this.closed || this.failed || this.alarms.list().length > 0 || this.driver.lead === 0n) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const read = this.linearizableRead().then(() => true, () => false);
    try {
      return await Promise.race([read, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** etcd's "apply request took too long" line, counted as etcd's slowApplies (ranges included, as etcd's). */
  private warnSlow(start: number, prefix: string, request: string, response: string, err?: unknown): void {
    this.slowApplies++;
    warnSlow(this.slowLog, this.cfg.warningApplyDurationMs, start, prefix, request, response, err);
  }

  /** Figures /metrics reads at scrape time. */
  gauges(): ServerGauges {
    return {
      hasLeader: this.driver.lead !== 0n,
      isLeader: this.driver.isLeader,
      isLearner: this.membership.localIsLearner,
      leaderChanges: this.leaderChanges,
      committed: this.driver.node.commitIndex,
      applied: this.applied,
      pendingProposals: this.waiters.size,
      quota: this.quota,
      dbSize: this.backend.sizeBytes(),
      dbSizeInUse: this.backend.sizeInUseBytes(),
      currentRevision: this.store.currentRev,
      compactRevision: Math.max(0, this.store.compactMainRev),
      keys: () => this.store.rangeKeys(Buffer.alloc(0), Buffer.alloc(0), this.store.currentRev, { limit: 0, rev: 0, countOnly: true }).count,
      watchers: this.watchHub.watcherCount,
      proposalsFailed: this.proposalsFailed,
      slowApplies: this.slowApplies,
    };
  }

  /** The peer links' counters, per member (for etcd's etcd_network_* metrics); empty without peers. */
  peerStats(): { id: bigint; sentBytes: number; receivedBytes: number; sentFailures: number; connected: boolean; disconnects: number }[] {
    const t = this.driver.transport;
    if (!t) return [];
    return [...t.stats()].map(([id, p]) => ({
      id, sentBytes: p.sentBytes, receivedBytes: p.receivedBytes, sentFailures: p.sentFailures + p.droppedMessages,
      connected: p.connected, disconnects: p.reconnects,
    }));
  }

  /** A consistent dump of the backend (see snapshot.ts), for Maintenance.Snapshot. */
  async snapshot(auth?: AuthContext): Promise<SnapshotData> {
    this.assertServing();
    this.checkAdmin(auth);
    await this.ready();
    return takeSnapshot(this.backend, snapDirOf(this.cfg));
  }

  /** Holds every reader and the apply loop away from the backend while fn runs. */
  private hold(fn: () => Promise<void>): Promise<void> {
    const run = async () => {
      while (this.gate) await this.gate;
      const p = fn().finally(() => {
        if (this.gate === p) this.gate = undefined;
      });
      this.gate = p;
      return p;
    };
    return run();
  }

  /** Waits out a defragment or a snapshot install, for callers that read the engine directly. */
  async ready(): Promise<void> {
    while (this.gate) await this.gate;
  }

  // --- the write path ---

  /**
   * One request through the log. auth: the client's (while auth is on), stamped in the entry's header as
   * etcd's username / auth_revision, for the applier's checks; a request without a token gets none.
   */
  private propose(req: InternalRequest, auth?: AuthContext): Promise<ApplyResult> {
    if (this.driver.node.commitIndex > this.applied + MAX_APPLY_GAP) return Promise.reject(Errors.tooManyRequests);
    const seq = this.ids.next();
    const data = encodeInternalRequest(req, this.ids.header(seq, auth?.info));
    if (data.length > this.cfg.maxRequestBytes + 1024) return Promise.reject(Errors.requestTooLarge);
    if (this.driver.lead === 0n) return this.proposeLater(req, seq, data);
    try {
      this.driver.propose(data);
    } catch (err) {
      // No leader to take it (or a leader transfer under way): etcd waits for one until its request timeout.
      if (err === ErrProposalDropped) return this.proposeLater(req, seq, data);
      this.proposalsFailed++;
      return Promise.reject(err);
    }
    return new Promise<ApplyResult>((resolve, reject) => this.waiters.add(seq, { req, start: Date.now(), resolve, reject }));
  }

  /**
   * A proposal raft could not take now (no leader yet, or a leader transfer): proposed again once a
   * leader is known, until the request timeout, as etcd's proposals wait for a leader.
   */
  private proposeLater(req: InternalRequest, seq: number, data: Buffer): Promise<ApplyResult> {
    const start = Date.now();
    return new Promise<ApplyResult>((resolve, reject) => {
      const attempt = () => {
        if (this.closed || this.failed) return reject(Errors.stopped);
        if (Date.now() - start >= this.requestTimeoutMs) {
          this.proposalsFailed++;
          return reject(this.timeoutError(start));
        }
        if (this.driver.lead === 0n) return void setTimeout(attempt, 50);
        try {
          this.driver.propose(data);
          this.waiters.add(seq, { req, start, resolve, reject });
        } catch (err) {
          if (err !== ErrProposalDropped) {
            this.proposalsFailed++;
            return reject(err);
          }
          setTimeout(attempt, 50);
        }
      };
      setTimeout(attempt, 50);
    });
  }

  /** etcd's parseProposeCtxErr: which timeout a request that started at start met. */
  private timeoutError(start: number): Error {
    const elected = this.leaderElectedAt;
    if (start > elected - 2 * this.cfg.electionTimeoutMs && start < elected) return Errors.timeoutDueToLeaderFail;
    const lead = this.driver.lead;
    const t = this.driver.transport;
    if (t && lead !== 0n && lead !== this.memberId && !(t.isConnected(lead) && (t.connectedSince(lead) ?? Infinity) <= start)) {
      return Errors.timeoutDueToConnectionLost;
    }
    return Errors.timeout;
  }

  private sweepProposals(): void {
    // Timed out: etcd's proposalsFailed counts these (and proposals raft refused), not applier refusals.
    this.proposalsFailed += this.waiters.sweep(Date.now(), this.requestTimeoutMs, (start) => this.timeoutError(start));
  }

  /** Committed entries, in order (the driver's apply hook). */
  private applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      // Entries the backend holds already (replayed after a restart, or covered by a snapshot from the
      // leader) are not applied again; conf changes are (they rebuild raft's configuration, idempotently).
      if (e.type === EntryType.CONF_CHANGE) this.applyConfChange(e);
      else if (e.index > this.applied) this.applyNormal(e);
      if (e.index > this.applied) this.applied = e.index;
    }
    this.committer.applied();
    if (this.appliedWaiters.length) this.wakeAppliedWaiters();
  }

  private applyNormal(e: Entry): void {
    if (e.data.length === 0) return; // a new leader's no-op
    const id = readRequestId(e.data);
    const w = id && id.prefix === this.ids.prefix ? this.waiters.take(id.seq) : undefined;
    let req: InternalRequest;
    try {
      req = w?.req ?? decodeInternalRequest(e.data);
    } catch (err) {
      this.fail(new Error(`cannot decode log entry ${e.index}: ${(err as Error).message}`));
      return;
    }
    if ('memberAttributes' in req) {
      const a = req.memberAttributes;
      this.membership.setAttributes(a.id, a.name, a.clientUrls);
      w?.resolve({ revision: this.store.currentRev });
      return;
    }
    const start = performance.now();
    try {
      // While auth is on, the applier checks the request as the user its header names (none: no token).
      const res = this.applier.apply(req, e.index, this.authStore.isAuthEnabled() ? readRequestAuth(e.data) : undefined);
      if (isSlow(start, this.cfg.warningApplyDurationMs)) {
        this.warnSlow(start, '', describeRequest(req), `revision:${(res as { revision?: number }).revision ?? ''}`);
      }
      w?.resolve(res);
    } catch (err) {
      if (isSlow(start, this.cfg.warningApplyDurationMs)) {
        this.warnSlow(start, '', describeRequest(req), '', err);
      }
      w?.reject(err);
    }
  }

  /**
   * A conf change, as etcd's applyConfChange: checked against the member list (the same verdict on every
   * member), then the member list, raft's configuration and the peers; the member that proposed it
   * answers its client. One the backend holds already (replayed after a restart) only rebuilds raft's
   * configuration, unless it was refused when it first applied.
   */
  private applyConfChange(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      this.fail(new Error(`cannot decode conf change entry ${e.index}: ${(err as Error).message}`));
      return;
    }
    if (e.index <= this.applied) {
      if (!this.rejectedConfChanges.has(e.index)) this.driver.applyConfChange(cc, e.index);
      return;
    }
    const refused = this.membership.validate(cc);
    if (refused) {
      // Raft's configuration stays as it is (etcd applies the change with no node).
      this.recordRejectedConfChange(e.index);
      this.log('warn', 'rejected a configuration change', { index: e.index, 'raft-conf-change-node-id': idHex(cc.nodeId), error: refused.message });
      this.reconfig.applied(cc, refused);
      return;
    }
    const change = this.membership.applyConfChange(cc);
    this.driver.applyConfChange(cc, e.index);
    const t = this.driver.transport;
    if (change.added && change.added.id !== this.memberId) this.addPeer(change.added);
    if (change.updated && change.updated.id !== this.memberId) this.addPeer(change.updated);
    if (change.removed !== undefined && change.removed !== this.memberId) t?.removePeer(change.removed);
    this.reconfig.applied(cc, undefined);
    if (change.removed === this.memberId) this.onRemovedFromCluster('its removal was applied');
  }

  /**
   * A member's peer URLs to the transport. One it cannot dial (a log written before Plinth refused such
   * URLs, or etcd's https/unix) is logged and left without a link, never a failure of the apply.
   */
  private addPeer(m: Member): void {
    try {
      this.driver.transport?.addPeer(m.id, m.peerUrls);
    } catch (err) {
      this.log('error', 'cannot reach a member at its peer URLs', { 'remote-peer-id': idHex(m.id), 'peer-urls': m.peerUrls, error: (err as Error).message });
    }
  }

  /** Conf changes refused when first applied, by index (after the raft snapshot point only). */
  private rejectedConfChanges = new Set<number>();

  private async loadRejectedConfChanges(): Promise<void> {
    this.rejectedConfChanges.clear();
    const prefix = Buffer.from(REJECTED_CONF_CHANGE_PREFIX, 'latin1');
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    await this.backend.scan('meta', prefix, end, (k) => {
      this.rejectedConfChanges.add(parseInt(k.subarray(prefix.length).toString('latin1'), 16));
    });
  }

  private recordRejectedConfChange(index: number): void {
    // Entries at or before the last snapshot point are never replayed: their verdicts can go.
    // One key each, so a client's stream of refused changes costs a write each, not a growing value.
    const floor = this.driver.snapshotPoint;
    for (const i of this.rejectedConfChanges) {
      if (i > floor) continue;
      this.rejectedConfChanges.delete(i);
      this.backend.delete('meta', rejectedConfChangeKey(i));
    }
    this.rejectedConfChanges.add(index);
    this.backend.put('meta', rejectedConfChangeKey(index), Buffer.alloc(0));
  }

  /**
   * This member is no longer in the cluster: as etcd, it stops serving shortly after (so a leader can
   * still tell the others that its removal committed), handing leadership to a voter first.
   */
  private onRemovedFromCluster(why: string): void {
    if (this.removed || this.closed) return;
    this.removed = true;
    this.log('warn', 'the member has been permanently removed from the cluster', { 'local-member-id': idHex(this.memberId), reason: why });
    if (this.driver.isLeader) {
      const st = this.driver.node.status();
      let best: bigint | undefined;
      let bestMatch = -1;
      for (const [id, pr] of st.progress ?? []) {
        if (id !== this.memberId && !pr.isLearner && pr.match > bestMatch) [best, bestMatch] = [id, pr.match];
      }
      if (best !== undefined) this.driver.transferLeader(best);
    }
    this.removalTimer = setTimeout(() => {
      if (this.closed) return;
      this.waiters.failAll(Errors.stopped);
      this.reconfig.close(Errors.stopped);
      if (this.hooks.onRemoved) this.hooks.onRemoved();
      else void this.close();
    }, Math.max(1000, 10 * this.cfg.heartbeatIntervalMs));
    this.removalTimer.unref();
  }

  // --- membership (the Cluster service and MoveLeader) ---

  /** Whether this member is a learner: it serves serializable ranges and Status only (etcd's interceptor). */
  get isLearner(): boolean {
    return this.membership.localIsLearner;
  }

  addMember(peerUrls: string[], isLearner: boolean, auth?: AuthContext): Promise<{ member: Member; members: Member[] }> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.reconfig.add(peerUrls, isLearner);
  }

  removeMember(id: bigint, auth?: AuthContext): Promise<Member[]> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.reconfig.remove(id);
  }

  updateMember(id: bigint, peerUrls: string[], auth?: AuthContext): Promise<Member[]> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.reconfig.update(id, peerUrls);
  }

  promoteMember(id: bigint, auth?: AuthContext): Promise<Member[]> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.reconfig.promote(id);
  }

  moveLeader(transferee: bigint, auth?: AuthContext): Promise<void> {
    this.assertServing();
    this.checkAdmin(auth);
    return this.reconfig.moveLeader(transferee);
  }

  /** A follower asks the leader to promote (etcd forwards over the peer port's HTTP). */
  private async forwardPromote(leader: bigint, id: bigint): Promise<Member[]> {
    const t = this.driver.transport;
    if (!t) throw Errors.noLeader;
    const body = Buffer.allocUnsafe(8);
    body.writeBigUInt64BE(BigInt.asUintN(64, id));
    let answer: Buffer;
    try {
      answer = await t.request(leader, 'member-promote', body, this.requestTimeoutMs);
    } catch (err) {
      const msg = (err as Error).message;
      const known = [Errors.learnerNotReady, Errors.memberNotFound, Errors.memberNotLearner, Errors.memberNotEnoughStarted, Errors.notLeader, Errors.timeout]
        .find((e) => msg === e.message || msg.endsWith(e.message));
      throw known ?? err;
    }
    return decodeMembers(JSON.parse(answer.toString('utf8')));
  }

  /** The cluster's ID and members, for a member joining with --initial-cluster-state existing. */
  membersInfo(): Buffer {
    return Buffer.from(`{"clusterId":"${idHex(this.clusterId)}","members":${encodeMembers(this.membership.list())}}`);
  }

  private waitApplied(index: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise<void>((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  private wakeAppliedWaiters(): void {
    const still: typeof this.appliedWaiters = [];
    for (const w of this.appliedWaiters) {
      if (this.applied >= w.index) w.resolve();
      else still.push(w);
    }
    this.appliedWaiters = still;
  }

  private publishedResolve!: () => void;
  /** Resolves once this member's name and client URLs are in the member list (etcd's ReadyNotify). */
  readonly published: Promise<void> = new Promise((r) => (this.publishedResolve = r));

  /** Publishes this member's name and client URLs through the log, until it is applied (etcd's publish). */
  private publish(): void {
    if (this.closed || this.failed) return;
    // Already in the member list as configured (a restart with the same flags): nothing to publish.
    const local = this.membership.local;
    if (local && local.name === this.cfg.name && sameUrls(local.clientUrls, this.cfg.advertiseClientUrls)) return this.publishedResolve();
    const attrs = { id: this.memberId, name: this.cfg.name, clientUrls: this.cfg.advertiseClientUrls };
    this.propose({ memberAttributes: attrs }).then(
      () => {
        this.log('info', 'published local member to cluster through raft', { 'local-member-id': this.memberId.toString(16), name: attrs.name, 'client-urls': attrs.clientUrls });
        this.publishedResolve();
      },
      () => {
        this.publishTimer = setTimeout(() => this.publish(), 500);
        this.publishTimer.unref();
      },
    );
  }

  // --- snapshots between members ---

  /**
   * The backend as applied now, into a file, for a follower the leader's log no longer reaches; with the
   * applied index the file holds (the snapshot's index, as etcd's createMergedSnapshotMessage).
   */
  private async dumpForFollower(): Promise<{ file: string; index: number }> {
    await this.ready();
    const file = `${snapDirOf(this.cfg)}/outgoing-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.snap`;
    await this.committer.commitNow();
    const { consistentIndex } = await writeBackendDump(this.backend, file);
    return { file, index: consistentIndex ?? 0 };
  }

  /** The leader's snapshot replaces this member's state: the backend, then everything built on it. */
  private installSnapshot(file: string, meta: SnapshotMetadata): Promise<void> {
    return this.hold(async () => {
      this.committer.suspend();
      try {
        await this.committer.commitNow();
        await installBackendDump(this.backend, file);
      } finally {
        this.committer.resume();
      }
      this.applied = Math.max(readConsistentIndex(this.backend), meta.index);
      await this.lessor.reload();
      if (!this.driver.isLeader) this.lessor.demote();
      await this.store.reload();
      await this.alarms.reload();
      await this.authStore.recover(this.backend);
      await this.membership.load();
      await this.loadRejectedConfChanges();
      this.watchHub.restore();
      // The peers as the snapshot has them: new ones dialed, ones removed meanwhile dropped.
      const t = this.driver.transport;
      for (const m of this.membership.list()) if (m.id !== this.memberId) this.addPeer(m);
      for (const id of t?.stats().keys() ?? []) if (!this.membership.get(id)) t?.removePeer(id);
      // A durable backend holds it now; the memory engine keeps the file (it is its state at a restart).
      if (this.backend.kind !== 'memory') await rm(file, { force: true });
      if (this.appliedWaiters.length) this.wakeAppliedWaiters();
    });
  }

  /** Raises the NOSPACE alarm through the log, once. */
  raiseNoSpace(): void {
    if (this.closed || this.failed || this.alarms.has(AlarmType.NOSPACE) || this.raisingNoSpace) return;
    this.raisingNoSpace = true;
    this.propose({ alarm: { action: AlarmAction.ACTIVATE, memberId: this.memberId, alarm: AlarmType.NOSPACE } })
      .catch(() => {})
      .finally(() => (this.raisingNoSpace = false));
  }

  private raisingNoSpace = false;

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.logger.fatal('server/etcd-server.ts', 'the member cannot go on; stopping', { 'local-member-id': idHex(this.memberId), error: err.message });
    this.waiters.failAll(Errors.stopped);
    this.reconfig.close(Errors.stopped);
    this.readIndexer.close();
    this.hooks.onFatal?.(err);
  }

  private checkQuota(cost: number): void {
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
    if (this.backend.sizeBytes() + cost >= this.quota) {
      // Raise the alarm through the log, as etcd does; this request fails at once.
      this.raiseNoSpace();
      throw Errors.noSpace;
    }
  }

  private assertServing(): void {
    if (this.closed || this.failed || this.removed) throw Errors.stopped;
  }

  /** Stops: finishes the entries under way, commits the backend with its consistent index, closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchHub.close();
    clearInterval(this.leaseTimer);
    clearInterval(this.sweepTimer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    if (this.removalTimer) clearTimeout(this.removalTimer);
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    await this.autoCompactor?.stop();
    await this.driver.stop();
    await this.driver.transport?.close().catch(() => {});
    this.readIndexer.close();
    this.waiters.failAll(Errors.stopped);
    this.reconfig.close(Errors.stopped);
    while (this.gate) await this.gate;
    // A compaction under way stops at its next batch; the next start resumes it.
    await this.store.close();
    this.authStore.close();
    await this.committer.close(!this.failed);
    await this.backend.close().catch(() => {});
    await this.wal.close().catch(() => {});
    await this.dataDirLock?.release().catch(() => {});
  }
}

function rejectedConfChangeKey(index: number): Buffer {
  return Buffer.from(REJECTED_CONF_CHANGE_PREFIX + index.toString(16).padStart(16, '0'), 'latin1');
}

function sameUrls(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((u, i) => u === b[i]);
}

/** etcd's isTxnSerializable: every range in the txn (both branches) is serializable. */
function txnSerializable(t: TxnRequest): boolean {
  const ok = (ops: RequestOp[]): boolean => ops.every((op) => ('range' in op ? op.range.serializable : 'txn' in op ? txnSerializable(op.txn) : true));
  return ok(t.success) && ok(t.failure);
}

function txnCost(t: TxnRequest): number {
  const cost = (ops: RequestOp[]): number =>
    ops.reduce((sum, op) => sum + ('put' in op ? KV_OVERHEAD + op.put.key.length + op.put.value.length : 'txn' in op ? txnCost(op.txn) : 0), 0);
  return Math.max(cost(t.success), cost(t.failure));
}

export { META_CONSISTENT_INDEX };
