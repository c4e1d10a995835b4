// Start N-member clusters on loopback, real etcd or Plinth, with the same command line (etcd's flags), for
// the cluster fault tests: kill, stop, restart, pause members; cut them off through fault proxies; ask who
// leads. Every process is a child we started; close() (and, as a safety net, the test process's exit)
// ends exactly those PIDs and removes the cluster's temp dir.
//
// With proxies, each member advertises a FaultProxy in front of its real peer port, so all peer traffic
// runs through proxies. Isolating member i must cut i's links in both directions, although the links
// i dials run through the *other* members' proxies:
// - Plinth's peer connections open with a handshake naming both members, so each proxy knows them.
// - real etcd's peer HTTP names nobody the proxy can trust on every request (probes carry no
//   X-Server-From; pipelines reuse connections a probe opened), and etcd cannot bind its outgoing
//   connections to a per-member source address. So the proxies ask the kernel instead: the dialing
//   socket's owner (Linux /proc, see socket-owner.ts) is one of our member processes, which names the
//   member. This is exact for any protocol; where /proc is not available, connections a member dials are
//   not attributed, and isolate(i) only cuts the links others dial to i (clusterIsolationIsExact).
//
// Membership changes: a running cluster grows with startJoining (a new member process started with
// --initial-cluster-state existing and the --initial-cluster that `etcdctl member add` printed, after the
// member was added through the Cluster API) and shrinks with markRemoved (after MemberRemove: the member
// keeps its index, is no longer asked who leads nor listed by endpoints(), and close() still ends its
// process). Member indexes never change; joined members are appended.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClusterClient, type ClusterClientOptions } from './cluster-client';
import { EtcdGrpc, type StatusResponse } from './etcd-grpc';
import { FaultProxy, type Fault } from './fault-proxy';
import { forgetDir, forgetPid, reapDir, reapPid } from './reaper';
import { freePort } from './servers';
import { SOCKET_OWNERS_KNOWN, socketOwner } from './socket-owner';

export { ClusterClient, recordOp, type ClientError, type ClientResult } from './cluster-client';

/** isolate(i) cuts every link of member i, also for real etcd (see the file's header). */
export const clusterIsolationIsExact = SOCKET_OWNERS_KNOWN;

export interface ClusterOptions {
  kind: 'etcd' | 'plinth';
  size: number;
  /** Plinth's storage engine (default lmdb). */
  backend?: 'lmdb' | 'leveldb' | 'memory';
  /** More flags for every member, or per member. */
  extraArgs?: string[] | ((index: number) => string[]);
  /** Put a FaultProxy in front of each member's peer port (needed for isolate/cutBetween). */
  proxies?: boolean;
  snapshotCount?: number;
  heartbeatMs?: number;
  electionMs?: number;
  preVote?: boolean;
  /** How long start and restart may take to serve (default 30 s). */
  readyTimeoutMs?: number;
  /** The peer URLs' scheme (default http; https needs the peer TLS flags in extraArgs, and no proxies). */
  peerScheme?: 'http' | 'https';
}

export type MemberState = 'running' | 'paused' | 'stopped';

export interface ClusterMember {
  readonly index: number;
  readonly name: string;
  /** The member id, as etcd derives it from the advertised peer URLs and the cluster token. */
  readonly id: bigint;
  readonly idHex: string;
  readonly clientUrl: string;
  /** host:port of clientUrl, for gRPC clients and etcdctl. */
  readonly endpoint: string;
  readonly listenPeerUrl: string;
  /** The advertised peer URL: the proxy's, with proxies. */
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly proxy?: FaultProxy;
  /** PID of the current process (undefined once stopped). */
  readonly pid: number | undefined;
  readonly state: MemberState;
  readonly isolated: boolean;
  /** A learner (started with startJoining({ learner: true }) and not yet markPromoted). */
  readonly learner: boolean;
  /** Removed from the cluster (markRemoved): skipped by leader() and endpoints(). */
  readonly removed: boolean;
  /** Exit code or signal of the last process that ended (undefined while none has). */
  readonly exit: number | NodeJS.Signals | undefined;
  /** The last 64 KB of the member's output, over all its restarts. */
  logs(): string;
}

const REPO = resolve(__dirname, '..', '..');
const LOG_BYTES = 64 * 1024;

// Safety net: whatever a failing test leaves behind ends with the test process: at its exit, and through
// the reaper when the test process is killed.
const liveProcs = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const p of liveProcs) p.kill('SIGKILL');
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});

/** etcd's member id: the first 8 bytes (big-endian) of sha1(sorted peer URLs joined, then the token). */
export function etcdMemberId(peerUrls: string[], clusterToken: string): bigint {
  const h = createHash('sha1');
  for (const u of [...peerUrls].sort()) h.update(u);
  h.update(clusterToken);
  return h.digest().readBigUInt64BE(0);
}

/** Ports chosen for a member to be added (planMember), before it is added and started. */
export interface PlannedMember {
  readonly name: string;
  /** The peer URL to add (`member add --peer-urls`): the proxy's, with proxies. */
  readonly peerUrl: string;
  readonly listenPeerUrl: string;
  readonly clientUrl: string;
  readonly proxy?: FaultProxy;
}

/** A member to start with --initial-cluster-state existing; its ports are planMember(name)'s when planned. */
export interface JoinOptions {
  name: string;
  /** The --initial-cluster to start with: what `etcdctl member add` printed (ETCD_INITIAL_CLUSTER). */
  initialCluster: string;
  /** Joined as a learner (member add --learner): leader() does not count it as a voter. */
  learner?: boolean;
  /** More flags for this member (after the cluster's own extraArgs). */
  extraArgs?: string[];
  /**
   * The member id the cluster gave it (MemberAdd's answer), checked against what it reports. Without it
   * the id is learned once the member serves, and with proxies, the links it dialed before are not
   * attributed to it (isolate would not cut them).
   */
  id?: bigint;
  /** Its data dir (default: a new dir in the cluster's temp dir). */
  dataDir?: string;
  /** How long it may take to serve (default: the cluster's readyTimeoutMs). */
  readyTimeoutMs?: number;
}

class Member implements ClusterMember {
  proc?: ChildProcess;
  state: MemberState = 'stopped';
  isolated = false;
  learner = false;
  removed = false;
  exit: number | NodeJS.Signals | undefined;
  private out = '';
  idHex: string;
  readonly endpoint: string;
  readonly grpc: EtcdGrpc;

  constructor(
    readonly index: number,
    readonly name: string,
    /** Known from the start for initial members; learned once a joined member serves. */
    public id: bigint,
    readonly clientUrl: string,
    readonly listenPeerUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
    readonly proxy: FaultProxy | undefined,
    private readonly command: string,
    private readonly args: string[],
  ) {
    this.idHex = id.toString(16);
    this.endpoint = clientUrl.replace(/^http:\/\//, '');
    this.grpc = new EtcdGrpc(this.endpoint);
  }

  get pid(): number | undefined {
    return this.state === 'stopped' ? undefined : this.proc?.pid;
  }

  logs(): string {
    return this.out;
  }

  private log(s: string): void {
    this.out = (this.out + s).slice(-LOG_BYTES);
  }

  spawn(): void {
    if (this.state !== 'stopped') throw new Error(`${this.name} is already running`);
    // Neither server may pick up flags from the test's environment (both read ETCD_*).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ETCD|PLINTH)_/.test(k)));
    const proc = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc = proc;
    this.state = 'running';
    this.exit = undefined;
    liveProcs.add(proc);
    if (proc.pid !== undefined) reapPid(proc.pid);
    proc.stdout!.on('data', (d) => this.log(String(d)));
    proc.stderr!.on('data', (d) => this.log(String(d)));
    proc.once('exit', (code, signal) => {
      liveProcs.delete(proc);
      if (proc.pid !== undefined) forgetPid(proc.pid);
      this.log(`\n--- ${this.name} (pid ${proc.pid}) exited: ${signal ?? code} ---\n`);
      if (this.proc === proc) {
        this.state = 'stopped';
        this.exit = signal ?? code ?? undefined;
      }
    });
  }

  exited(): boolean {
    return !this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Sends a signal and waits for the process to end (KILL after killAfterMs). */
  async end(signal: NodeJS.Signals, killAfterMs = 10_000): Promise<void> {
    const proc = this.proc;
    if (!proc || this.exited()) {
      this.state = 'stopped';
      return;
    }
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    // A stopped process handles no signal but KILL until continued.
    if (this.state === 'paused' && signal !== 'SIGKILL') proc.kill('SIGCONT');
    proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    await gone;
    clearTimeout(t);
    this.state = 'stopped';
  }

  /** Ready: it answers a serializable Range (etcd serves clients only once it has joined the cluster). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      if (this.exited()) throw new Error(`${this.name} exited before serving:\n${this.out.slice(-4000)}`);
      try {
        await this.grpc.call('kv', 'Range', { key: Buffer.from('\u0000cluster-harness-probe'), serializable: true }, 1000);
        return;
      } catch (e) {
        last = e;
        await sleep(100);
      }
    }
    throw new Error(`${this.name} not serving after ${timeoutMs} ms (${(last as Error)?.message}):\n${this.out.slice(-4000)}`);
  }
}

export class Cluster {
  readonly kind: 'etcd' | 'plinth';
  readonly token: string;
  readonly dir: string;
  private readonly ms: Member[];
  private readonly clients = new Set<ClusterClient>();
  private readonly readyTimeoutMs: number;
  private readonly opts: ClusterOptions | undefined;
  private readonly planned = new Map<string, PlannedMember>();
  private closed = false;

  /** @internal use startCluster */
  constructor(kind: 'etcd' | 'plinth', token: string, dir: string, members: Member[], readyTimeoutMs: number, opts?: ClusterOptions) {
    this.kind = kind;
    this.token = token;
    this.dir = dir;
    this.ms = members;
    this.readyTimeoutMs = readyTimeoutMs;
    this.opts = opts;
  }

  get members(): readonly ClusterMember[] {
    return this.ms;
  }

  get size(): number {
    return this.ms.length;
  }

  /** Every member's client endpoint (host:port), stopped ones included, removed ones not. */
  endpoints(): string[] {
    return this.ms.filter((m) => !m.removed).map((m) => m.endpoint);
  }

  /** The indexes of the members not removed (learners included). */
  activeIndexes(): number[] {
    return this.ms.filter((m) => !m.removed).map((m) => m.index);
  }

  /** The index of the member with this id (a bigint, or hex as etcdctl prints it); -1 if none. */
  indexOf(id: bigint | string): number {
    const want = typeof id === 'bigint' ? id : BigInt(`0x${id}`);
    return this.ms.findIndex((m) => m.id === want);
  }

  // ---- membership ---------------------------------------------------------------------------------

  /**
   * Picks free ports for a member to be added under `name` (with proxies, a proxy in front of its peer
   * port): add its peerUrl to the cluster (etcdctl member add NAME --peer-urls=PEERURL), then
   * startJoining({ name, ... }).
   */
  async planMember(name: string): Promise<PlannedMember> {
    if (this.closed) throw new Error('the cluster is closed');
    const clientUrl = `http://127.0.0.1:${await freePort()}`;
    const listenPeerUrl = `http://127.0.0.1:${await freePort()}`;
    let proxy: FaultProxy | undefined;
    if (this.opts?.proxies) {
      proxy = await FaultProxy.start({
        target: { host: '127.0.0.1', port: Number(new URL(listenPeerUrl).port) },
        identify: async ({ remotePort, localPort }) => this.memberByPid(await socketOwner(remotePort, localPort, this.livePids()))?.id,
      });
    }
    const plan: PlannedMember = { name, clientUrl, listenPeerUrl, peerUrl: proxy ? proxy.url : listenPeerUrl, proxy };
    await this.planned.get(name)?.proxy?.close(); // planned again: the new plan replaces the old
    this.planned.set(name, plan);
    return plan;
  }

  /**
   * Starts a new member process that joins the running cluster: the cluster's flags (token, heartbeat
   * and election, snapshot count, pre-vote, backend, extraArgs) with --initial-cluster-state existing and
   * the given --initial-cluster. Add the member first (MemberAdd) with planMember(name)'s peer URL;
   * without a plan, new ports are picked (a member the cluster does not know, which it refuses). Unless
   * wait is false, waits until it serves a serializable Range (a learner refuses linearizable requests)
   * and learns its id from Status (see waitJoined). Answers the new member's index.
   */
  async startJoining(opts: JoinOptions & { wait?: boolean }): Promise<number> {
    const m = await this.addJoining(opts);
    if (opts.wait !== false) await this.waitJoined(m.index, opts.readyTimeoutMs);
    return m.index;
  }

  /** Waits until joined member i serves, and learns its id (checked against JoinOptions.id if given). */
  async waitJoined(i: number, timeoutMs = this.readyTimeoutMs): Promise<void> {
    const m = this.member(i);
    await m.waitReady(timeoutMs);
    const s = await m.grpc.status(2000);
    const reported = BigInt(s.header.member_id);
    if (m.id !== 0n && reported !== m.id) {
      throw new Error(`${m.name} reports member id ${reported.toString(16)}, expected ${m.idHex}:\n${m.logs().slice(-3000)}`);
    }
    this.learnId(m, reported);
  }

  private async addJoining(opts: JoinOptions): Promise<Member> {
    if (this.closed) throw new Error('the cluster is closed');
    const o = this.opts;
    if (!o) throw new Error('startJoining: this cluster was not started by startCluster');
    const plan = this.planned.get(opts.name) ?? (await this.planMember(opts.name));
    this.planned.delete(opts.name);
    const index = this.ms.length;
    const dataDir = opts.dataDir ?? join(this.dir, existsSync(join(this.dir, opts.name)) ? `${opts.name}-${index}` : opts.name);
    const extra = [...(typeof o.extraArgs === 'function' ? o.extraArgs(index) : o.extraArgs ?? []), ...(opts.extraArgs ?? [])];
    const [command, argv] = memberCommand(o, {
      name: opts.name, dataDir, clientUrl: plan.clientUrl, listenPeerUrl: plan.listenPeerUrl, peerUrl: plan.peerUrl,
      initialCluster: opts.initialCluster, state: 'existing', token: this.token, extra,
    });
    const m = new Member(index, opts.name, opts.id ?? 0n, plan.clientUrl, plan.listenPeerUrl, plan.peerUrl, dataDir, plan.proxy, command, argv);
    m.learner = !!opts.learner;
    if (opts.id !== undefined) this.learnId(m, opts.id);
    this.ms.push(m);
    m.spawn();
    return m;
  }

  private learnId(m: Member, id: bigint): void {
    m.id = id;
    m.idHex = id.toString(16);
    if (m.proxy) m.proxy.targetId = id;
  }

  /**
   * Member i was removed from the cluster (MemberRemove answered): leader() and endpoints() skip it. Its
   * process, while it runs (etcd ends a removed member by itself), is left to the test and to close().
   */
  markRemoved(i: number): void {
    this.member(i).removed = true;
  }

  /** Learner i was promoted (MemberPromote answered): leader() counts it as a voter. */
  markPromoted(i: number): void {
    this.member(i).learner = false;
  }

  /** Starts member i's process again without waiting for it to serve (e.g. a removed member coming back). */
  respawn(i: number): void {
    const m = this.member(i);
    if (m.state !== 'stopped') throw new Error(`respawn(${i}): ${m.name} is ${m.state}`);
    m.spawn();
  }

  /** Waits until member i's process ends by itself: answers its exit code or signal, or 'timeout'. */
  async waitExit(i: number, timeoutMs: number): Promise<number | NodeJS.Signals | 'timeout'> {
    const m = this.member(i);
    const deadline = Date.now() + timeoutMs;
    while (m.state !== 'stopped') {
      if (Date.now() > deadline) return 'timeout';
      await sleep(50);
    }
    return m.exit ?? 'timeout';
  }

  // ---- processes ----------------------------------------------------------------------------------

  kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.member(i).end(signal);
  }

  /** SIGTERM, and SIGKILL after 10 s. */
  stop(i: number): Promise<void> {
    return this.member(i).end('SIGTERM');
  }

  /** Starts a stopped member again, same command line and data dir, and waits until it serves. */
  async restart(i: number, timeoutMs = this.readyTimeoutMs): Promise<void> {
    const m = this.member(i);
    if (m.state !== 'stopped') throw new Error(`restart(${i}): ${m.name} is ${m.state}; kill or stop it first`);
    m.spawn();
    await m.waitReady(timeoutMs);
  }

  pause(i: number): void {
    const m = this.member(i);
    if (m.state !== 'running') throw new Error(`pause(${i}): ${m.name} is ${m.state}`);
    m.proc!.kill('SIGSTOP');
    m.state = 'paused';
  }

  resume(i: number): void {
    const m = this.member(i);
    if (m.state !== 'paused') throw new Error(`resume(${i}): ${m.name} is ${m.state}`);
    m.proc!.kill('SIGCONT');
    m.state = 'running';
  }

  // ---- network faults (proxies) -----------------------------------------------------------------------

  /**
   * Cuts member i off from all others, both directions ('discard' by default: connections stay open,
   * nothing passes, as in a real partition; see Fault). Clients can still reach it.
   */
  isolate(i: number, fault: Fault = 'discard'): void {
    const m = this.member(i);
    for (const p of this.proxies()) p.isolate(m.id, fault);
    m.isolated = true;
  }

  /** heal(i): member i rejoins; heal(): every network fault on every proxy ends (delays stay). */
  heal(i?: number): void {
    if (i === undefined) {
      for (const p of this.proxies()) p.heal();
      for (const m of this.ms) m.isolated = false;
      return;
    }
    const m = this.member(i);
    for (const p of this.proxies()) p.rejoin(m.id);
    m.isolated = false;
  }

  /** Cuts the links between members i and j only. */
  cutBetween(i: number, j: number, fault: Fault = 'cut'): void {
    for (const p of this.proxies()) p.cutBetween(this.member(i).id, this.member(j).id, fault);
  }

  healBetween(i: number, j: number): void {
    for (const p of this.proxies()) p.healBetween(this.member(i).id, this.member(j).id);
  }

  // ---- leadership ---------------------------------------------------------------------------------

  /** Maintenance.Status of one member. */
  status(i: number, timeoutMs = 1000): Promise<StatusResponse> {
    return this.member(i).grpc.status(timeoutMs);
  }

  /**
   * The index of the leader that every running, non-isolated member names (removed members are not
   * asked; at least a majority of the voters must be asked, and the leader must be one of them); rejects,
   * saying what each member answered, otherwise.
   */
  async leader(): Promise<number> {
    const asked = this.ms.filter((m) => !m.removed && m.state === 'running' && !m.isolated);
    const voters = this.ms.filter((m) => !m.removed && !m.learner);
    const majority = Math.floor(voters.length / 2) + 1;
    const askedVoters = asked.filter((m) => !m.learner).length;
    if (askedVoters < majority) throw new Error(`no leader: only ${askedVoters} of ${voters.length} voting members can be asked`);
    const answers = await Promise.all(
      asked.map((m) =>
        m.grpc.status(1000).then(
          (s) => ({ m, leader: BigInt(s.leader), term: s.raftTerm }),
          (e: Error) => ({ m, error: e.message }),
        ),
      ),
    );
    const show = () =>
      answers.map((a) => `${a.m.name}: ${'error' in a ? `error ${a.error}` : `leader ${a.leader.toString(16)} term ${a.term}`}`).join('; ');
    const leaders = new Set<bigint>();
    for (const a of answers) {
      if ('error' in a) throw new Error(`no agreed leader: ${show()}`);
      leaders.add(a.leader);
    }
    const [id] = leaders;
    if (leaders.size !== 1 || id === 0n) throw new Error(`no agreed leader: ${show()}`);
    const index = this.ms.findIndex((m) => m.id === id);
    if (index < 0 || !asked.includes(this.ms[index])) throw new Error(`leader ${id.toString(16)} is not among the members asked: ${show()}`);
    return index;
  }

  /** Polls leader() until it agrees (and, with `not`, on another member than `not`). */
  async waitForLeader(timeoutMs = 15_000, opts: { not?: number } = {}): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown = new Error('no answer yet');
    while (Date.now() < deadline) {
      try {
        const i = await this.leader();
        if (i !== opts.not) return i;
        last = new Error(`the leader is still ${this.ms[i].name}`);
      } catch (e) {
        last = e;
      }
      await sleep(100);
    }
    throw new Error(`no leader after ${timeoutMs} ms: ${(last as Error).message}`);
  }

  // ---- clients and shutdown -----------------------------------------------------------------------

  /** A ClusterClient on member i; closed with the cluster. */
  client(i: number, opts?: ClusterClientOptions): ClusterClient {
    const c = new ClusterClient(this.member(i).endpoint, opts);
    this.clients.add(c);
    return c;
  }

  /** Ends the members we started (SIGKILL), the proxies and clients, and removes the temp dir. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.ms.map((m) => m.end('SIGKILL')));
    for (const c of this.clients) c.close();
    for (const m of this.ms) m.grpc.close();
    const planned = [...this.planned.values()].map((p) => p.proxy).filter((p): p is FaultProxy => !!p);
    await Promise.all([...this.ms.map((m) => m.proxy), ...planned].filter((p): p is FaultProxy => !!p).map((p) => p.close()));
    await rm(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
    forgetDir(this.dir);
  }

  private member(i: number): Member {
    const m = this.ms[i];
    if (!m) throw new RangeError(`no member ${i} (the cluster has ${this.ms.length})`);
    return m;
  }

  private proxies(): FaultProxy[] {
    const ps = this.ms.map((m) => m.proxy).filter((p): p is FaultProxy => !!p);
    if (ps.length !== this.ms.length) throw new Error('this cluster was started without proxies ({ proxies: true })');
    return ps;
  }

  /** @internal the member whose running process has this pid (none while its id is not known yet). */
  memberByPid(pid: number | undefined): Member | undefined {
    return pid === undefined ? undefined : this.ms.find((m) => m.pid === pid && m.id !== 0n);
  }

  /** @internal */
  livePids(): number[] {
    return this.ms.map((m) => m.pid).filter((p): p is number => p !== undefined);
  }
}

/**
 * Starts a cluster and waits until every member serves and all agree on a leader. A start that fails
 * because a chosen port was taken meanwhile (tests run in parallel) is retried on new ports.
 */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use|EADDRINUSE/i.test(String((err as Error).message))) throw err;
    }
  }
}

async function startClusterOnce(opts: ClusterOptions): Promise<Cluster> {
  if (!(Number.isInteger(opts.size) && opts.size >= 1)) throw new RangeError(`startCluster: size must be a positive integer (got ${opts.size})`);
  if (opts.kind === 'plinth' && !existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('dist/ missing: run npm run build');
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const token = `${opts.kind}-test-${process.pid}-${randomBytes(6).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `${opts.kind}-cluster-`));
  liveDirs.add(dir);
  reapDir(dir);
  const names = Array.from({ length: opts.size }, (_, i) => `m${i + 1}`);
  const proxies: FaultProxy[] = [];
  let cluster: Cluster | undefined;
  try {
    const clientPorts: number[] = [];
    const peerPorts: number[] = [];
    for (let i = 0; i < opts.size; i++) {
      clientPorts.push(await freePort());
      peerPorts.push(await freePort());
    }
    if (opts.proxies) {
      for (let i = 0; i < opts.size; i++) {
        proxies.push(
          await FaultProxy.start({
            target: { host: '127.0.0.1', port: peerPorts[i] },
            // The dialer of a connection is whichever of our members owns the socket.
            identify: async ({ remotePort, localPort }) => {
              if (!cluster) return undefined;
              return cluster.memberByPid(await socketOwner(remotePort, localPort, cluster.livePids()))?.id;
            },
          }),
        );
      }
    }
    const listenPeer = peerPorts.map((p) => `${opts.peerScheme ?? 'http'}://127.0.0.1:${p}`);
    const advertised = opts.proxies ? proxies.map((p) => p.url) : listenPeer;
    const initialCluster = names.map((n, i) => `${n}=${advertised[i]}`).join(',');
    const members = names.map((name, i) => {
      const clientUrl = `http://127.0.0.1:${clientPorts[i]}`;
      const dataDir = join(dir, name);
      const extra = typeof opts.extraArgs === 'function' ? opts.extraArgs(i) : opts.extraArgs ?? [];
      const [command, argv] = memberCommand(opts, {
        name, dataDir, clientUrl, listenPeerUrl: listenPeer[i], peerUrl: advertised[i], initialCluster, state: 'new', token, extra,
      });
      const id = etcdMemberId([advertised[i]], token);
      if (proxies[i]) proxies[i].targetId = id;
      return new Member(i, name, id, clientUrl, listenPeer[i], advertised[i], dataDir, proxies[i], command, argv);
    });
    cluster = new Cluster(opts.kind, token, dir, members, readyTimeoutMs, opts);
    for (const m of members) m.spawn();
    await Promise.all(members.map((m) => m.waitReady(readyTimeoutMs)));
    await cluster.waitForLeader(readyTimeoutMs);
    // isolate() relies on the ids we derived; a server that derives them otherwise must say so here.
    for (const m of members) {
      const s = await cluster.status(m.index, 2000);
      if (BigInt(s.header.member_id) !== m.id) {
        throw new Error(`${m.name} reports member id ${BigInt(s.header.member_id).toString(16)}, expected ${m.idHex} (etcd's derivation)`);
      }
    }
    // Every member has applied every member's published name and client URLs, so `member list` through
    // any of them shows the cluster started. A member publishes through the log once it serves, and
    // the others apply it a heartbeat or so later: without this wait a test that asks a follower right
    // away can see a member with no client URLs yet (on etcd as on Plinth).
    const deadline = Date.now() + readyTimeoutMs;
    for (const m of members) {
      for (;;) {
        const list = await m.grpc.memberList(2000).catch(() => undefined);
        if (list && members.every((x) => list.members.some((y) => BigInt(y.ID) === x.id && y.name === x.name && y.clientURLs?.length))) break;
        if (Date.now() > deadline) throw new Error(`${m.name} has not applied every member's published client URLs after ${readyTimeoutMs} ms: ${JSON.stringify(list)}`);
        await sleep(50);
      }
    }
    return cluster;
  } catch (err) {
    const logs = cluster ? cluster.members.map((m) => `--- ${m.name} ---\n${m.logs().slice(-3000)}`).join('\n') : '';
    if (cluster) await cluster.close();
    else {
      await Promise.all(proxies.map((p) => p.close()));
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
      forgetDir(dir);
    }
    (err as Error).message += logs && !(err as Error).message.includes('---') ? `\n${logs}` : '';
    throw err;
  }
}

interface MemberFlags {
  name: string;
  dataDir: string;
  clientUrl: string;
  listenPeerUrl: string;
  /** The advertised peer URL. */
  peerUrl: string;
  initialCluster: string;
  state: 'new' | 'existing';
  token: string;
  extra: string[];
}

/** The command line of a member, etcd's flags for both kinds. */
function memberCommand(opts: ClusterOptions, f: MemberFlags): [string, string[]] {
  const args = [
    '--name', f.name, '--data-dir', f.dataDir,
    '--listen-client-urls', f.clientUrl, '--advertise-client-urls', f.clientUrl,
    '--listen-peer-urls', f.listenPeerUrl, '--initial-advertise-peer-urls', f.peerUrl,
    '--initial-cluster', f.initialCluster, '--initial-cluster-state', f.state, '--initial-cluster-token', f.token,
    '--heartbeat-interval', String(opts.heartbeatMs ?? 100), '--election-timeout', String(opts.electionMs ?? 1000),
    '--snapshot-count', String(opts.snapshotCount ?? 100_000),
    ...(opts.preVote ? ['--pre-vote'] : []),
  ];
  return opts.kind === 'etcd'
    ? ['etcd', [...args, '--logger', 'zap', '--log-outputs', 'stderr', ...f.extra]]
    : [process.execPath, [join(REPO, 'bin', 'plinth.js'), ...args, '--backend', opts.backend ?? 'lmdb', ...f.extra]];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
