import { createHash } from 'node:crypto';
import { Errors, type EtcdError } from '../errors';
import { ConfChangeType, type ConfChange, type ConfState, type NodeId } from '../raft/core/types';
import type { Backend } from '../storage';
import { clusterId as deriveClusterId, memberId as deriveMemberId } from './identity';

// The cluster's members as the log has made them (etcd's membership.RaftCluster): conf-change entries
// add, remove and update members; a member's name and client URLs are published through the log
// once it serves. Kept in the backend's `members` / `members_removed` buckets, so a snapshot carries them.

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** etcd's types.ID.String(): hex without leading zeros. */
export const idHex = (id: bigint): string => BigInt.asUintN(64, id).toString(16);

/**
 * A conf change's context: the member it adds or updates (etcd puts the member's JSON there), and for
 * a promotion (an ADD_NODE of a learner) isPromote, as etcd's ConfigChangeContext.
 */
export function memberContext(m: Member, isPromote = false): Buffer {
  const v: Record<string, unknown> = { id: idHex(m.id), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner };
  if (isPromote) v.isPromote = true;
  return Buffer.from(JSON.stringify(v));
}

/** A member from its JSON (a context's, or an element of a member list). */
export function memberFromJson(x: unknown): Member {
  const v = (x !== null && typeof x === 'object' ? x : {}) as Record<string, unknown>;
  const strings = (y: unknown) => (Array.isArray(y) ? y.filter((s): s is string => typeof s === 'string') : []);
  if (typeof v.id !== 'string' || !/^[0-9a-f]{1,16}$/.test(v.id)) throw new Error('member context: bad id');
  return {
    id: BigInt('0x' + v.id),
    name: typeof v.name === 'string' ? v.name : '',
    peerUrls: strings(v.peerURLs),
    clientUrls: strings(v.clientURLs),
    isLearner: v.isLearner === true,
  };
}

export function parseMemberContext(buf: Buffer): { member: Member; isPromote: boolean } {
  const v = JSON.parse(buf.toString('utf8')) as { isPromote?: unknown };
  return { member: memberFromJson(v), isPromote: v.isPromote === true };
}

/** A member list between members (a forwarded promotion's answer): their contexts as a JSON array. */
export function encodeMembers(ms: Member[]): string {
  return `[${ms.map((m) => memberContext(m).toString('utf8')).join(',')}]`;
}

export function decodeMembers(v: unknown): Member[] {
  if (!Array.isArray(v)) throw new Error('member list: not an array');
  return v.map(memberFromJson);
}

/**
 * A member added at runtime gets etcd's NewMember ID: sha1 of its sorted peer URLs and the time in
 * seconds (MemberAdd passes no cluster name), so adding the same URLs again later gives a new ID.
 */
export function newMemberId(peerUrls: string[], nowMs: number): bigint {
  const b = [...peerUrls].sort().join('') + String(Math.floor(nowMs / 1000));
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

/**
 * etcd's types.NewURLs for a member's peer URLs: at least one; each http/https/unix/unixs with
 * host:port and no path. Returns them trimmed and sorted, or undefined when any is invalid.
 */
export function parseMemberUrls(urls: string[]): string[] | undefined {
  if (urls.length === 0) return undefined;
  const out: string[] = [];
  for (const raw of urls) {
    const s = raw.trim();
    const m = /^(https?|unixs?):\/\/([^/?#]*)(.*)$/i.exec(s);
    if (!m) return undefined;
    const [, , host, rest] = m;
    // net.SplitHostPort: host:port (IPv6 in brackets); the port may be empty, the colon may not.
    if (!/^(\[[^\]]*\]|[^:[\]]*):[^:]*$/.test(host.replace(/^[^@]*@/, ''))) return undefined;
    if (rest !== '' && !/^[?#]/.test(rest)) return undefined;
    out.push(s);
  }
  return out.sort();
}

/** --initial-cluster parsed: name → peer URLs, in the order given. */
export type InitialCluster = Map<string, string[]>;

export class ClusterConfigError extends Error {}

export function parseInitialCluster(s: string): InitialCluster {
  const out: InitialCluster = new Map();
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ClusterConfigError(`--initial-cluster: "${part}" is not name=URL`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    try {
      new URL(url);
    } catch {
      throw new ClusterConfigError(`--initial-cluster: "${url}" is not a URL`);
    }
    out.set(name, [...(out.get(name) ?? []), url]);
  }
  return out;
}

/**
 * The members of a new cluster as every member derives them from the same flags (etcd's
 * NewClusterFromURLsMap): IDs from each member's peer URLs and the token, the cluster ID from the IDs.
 * Checks what etcd's VerifyBootstrap checks, with its words.
 */
export function bootstrapMembers(
  initial: InitialCluster, token: string, localName: string, advertisePeerUrls: string[],
): { members: Member[]; clusterId: bigint; localId: bigint } {
  const mine = initial.get(localName);
  if (!mine) throw new ClusterConfigError(`couldn't find local name "${localName}" in the initial cluster configuration`);
  const norm = (u: string) => new URL(u).href.replace(/\/$/, '');
  const want = [...new Set(mine.map(norm))].sort();
  const have = [...new Set(advertisePeerUrls.map(norm))].sort();
  if (want.join(',') !== have.join(',')) {
    const missing = want.filter((u) => !have.includes(u));
    if (missing.length) {
      throw new ClusterConfigError(`--initial-cluster has ${missing.map((u) => `${localName}=${u}`).join(',')} but missing from --initial-advertise-peer-urls=${have.join(',')}`);
    }
    const extra = have.filter((u) => !want.includes(u));
    throw new ClusterConfigError(`--initial-advertise-peer-urls has ${extra.join(',')} but missing from --initial-cluster=${[...initial].map(([n, us]) => us.map((u) => `${n}=${u}`).join(',')).join(',')}`);
  }
  const seen = new Set<string>();
  for (const urls of initial.values()) {
    for (const u of urls.map(norm)) {
      if (seen.has(u)) throw new ClusterConfigError(`initial cluster ${[...initial].map(([n, us]) => `${n}=${us.join(',')}`).join(',')} has duplicate url`);
      seen.add(u);
    }
  }
  const members = [...initial].map(([name, urls]) => ({
    id: deriveMemberId(urls, token), name, peerUrls: urls, clientUrls: [] as string[], isLearner: false,
  }));
  const ids = new Set(members.map((m) => m.id));
  if (ids.size !== members.length) throw new ClusterConfigError('initial cluster: two members derive the same ID (same peer URLs)');
  members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { members, clusterId: deriveClusterId(members.map((m) => m.id)), localId: deriveMemberId(mine, token) };
}

const REMOVED = Buffer.from('removed');
/** etcd 3.4's maxLearners. */
export const MAX_LEARNERS = 1;

export class Membership {
  private readonly byId = new Map<bigint, Member>();
  private readonly removed = new Set<bigint>();

  constructor(readonly localId: bigint, public clusterId: bigint, private readonly backend: Backend) {}

  /** Reads the members back from the backend (start, or after a snapshot replaced the backend). */
  async load(): Promise<void> {
    this.byId.clear();
    this.localIsLearner = false;
    this.removed.clear();
    await this.backend.scan('members', Buffer.alloc(0), undefined, (_k, v) => {
      const m = memberFromJson(JSON.parse(v.toString('utf8')));
      this.byId.set(m.id, m);
      if (m.id === this.localId) this.localIsLearner = m.isLearner;
    });
    await this.backend.scan('members_removed', Buffer.alloc(0), undefined, (k) => {
      this.removed.add(BigInt('0x' + k.toString('latin1')));
    });
  }

  /** Members sorted by ID, as etcd lists them. */
  list(): Member[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): Member | undefined {
    return this.byId.get(id);
  }

  get local(): Member | undefined {
    return this.byId.get(this.localId);
  }

  /**
   * Whether this member is a learner, kept as a plain field: every gRPC call asks (etcd's learner
   * interceptor), and a bigint-keyed lookup per put or range is not free.
   */
  localIsLearner = false;

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The conf state the members make (voters and learners), for a member list loaded from a backend. */
  confState(): ConfState {
    const ms = this.list();
    return { voters: ms.filter((m) => !m.isLearner).map((m) => m.id), learners: ms.filter((m) => m.isLearner).map((m) => m.id) };
  }

  /**
   * Whether a committed conf change may apply (etcd's ValidateConfigurationChange), with the error its
   * proposer gets otherwise. Every member decides the same, as it has the same member list.
   */
  validate(cc: ConfChange): EtcdError | undefined {
    const id = cc.nodeId;
    if (this.removed.has(id)) return Errors.memberNotFound;
    const existing = this.byId.get(id);
    const urlsInUse = (except?: bigint) => new Set(this.list().filter((m) => m.id !== except).flatMap((m) => m.peerUrls));
    switch (cc.type) {
      case ConfChangeType.ADD_NODE:
      case ConfChangeType.ADD_LEARNER_NODE: {
        const { member: m, isPromote } = parseMemberContext(cc.context);
        if (isPromote) {
          if (!existing) return Errors.memberNotFound;
          if (!existing.isLearner) return Errors.memberNotLearner;
          return undefined;
        }
        if (existing) return Errors.memberExist;
        const used = urlsInUse();
        if (m.peerUrls.some((u) => used.has(u))) return Errors.peerUrlExist;
        if (m.isLearner && this.list().filter((x) => x.isLearner).length + 1 > MAX_LEARNERS) return Errors.tooManyLearners;
        return undefined;
      }
      case ConfChangeType.REMOVE_NODE:
        return existing ? undefined : Errors.memberNotFound;
      case ConfChangeType.UPDATE_NODE: {
        if (!existing) return Errors.memberNotFound;
        const used = urlsInUse(id);
        return parseMemberContext(cc.context).member.peerUrls.some((u) => used.has(u)) ? Errors.peerUrlExist : undefined;
      }
    }
    return undefined;
  }

  /** Voting members that have published their name (etcd's IsStarted). */
  startedVoters(): Member[] {
    return this.list().filter((m) => !m.isLearner && m.name !== '');
  }

  /**
   * Applies a committed conf change to the member list. Idempotent (entries after the last snapshot
   * are applied again at every start). Returns what changed for the caller to act on (peers).
   */
  applyConfChange(cc: ConfChange): { added?: Member; removed?: bigint; updated?: Member } {
    switch (cc.type) {
      case ConfChangeType.ADD_NODE:
      case ConfChangeType.ADD_LEARNER_NODE: {
        const { member: m, isPromote } = parseMemberContext(cc.context);
        if (m.id !== cc.nodeId) throw new Error(`conf change: member ${idHex(m.id)} in the context of a change for ${idHex(cc.nodeId)}`);
        const existing = this.byId.get(m.id);
        const isLearner = cc.type === ConfChangeType.ADD_LEARNER_NODE;
        // Promotion (a learner added again as a voter) keeps what the member published.
        const member: Member = existing
          ? { ...existing, peerUrls: isPromote || !m.peerUrls.length ? existing.peerUrls : m.peerUrls, isLearner }
          : { ...m, isLearner };
        this.put(member);
        return { added: member };
      }
      case ConfChangeType.REMOVE_NODE: {
        this.byId.delete(cc.nodeId);
        if (cc.nodeId === this.localId) this.localIsLearner = false;
        this.backend.delete('members', Buffer.from(idHex(cc.nodeId)));
        this.removed.add(cc.nodeId);
        this.backend.put('members_removed', Buffer.from(idHex(cc.nodeId)), REMOVED);
        return { removed: cc.nodeId };
      }
      case ConfChangeType.UPDATE_NODE: {
        const existing = this.byId.get(cc.nodeId);
        if (!existing) return {};
        const member = { ...existing, peerUrls: parseMemberContext(cc.context).member.peerUrls };
        this.put(member);
        return { updated: member };
      }
    }
    return {};
  }

  /** A member's published name and client URLs (ignored for a member no longer in the cluster). */
  setAttributes(id: NodeId, name: string, clientUrls: string[]): void {
    const m = this.byId.get(id);
    if (!m) return;
    this.put({ ...m, name, clientUrls });
  }

  private put(m: Member): void {
    this.byId.set(m.id, m);
    if (m.id === this.localId) this.localIsLearner = m.isLearner;
    this.backend.put('members', Buffer.from(idHex(m.id)), memberContext(m));
  }
}
