// Key layout and request shapes, as kube-apiserver uses etcd (k8s.io/apiserver/pkg/storage/etcd3/store.go).
//
// Keys: <prefix><resource>/<namespace>/<name> for namespaced resources, <prefix><resource>/<name> for
// cluster-scoped ones; the prefix is '/registry/' unless kube-apiserver runs with another --etcd-prefix.
// A resource is one path segment ('pods', 'deployments'), or two:
//   - when the first segment holds a dot: an API group ('apiregistration.k8s.io/apiservices', custom
//     resources 'cilium.io/ciliumendpoints': CRD groups always hold a dot), so /registry/<group>/<r>/<name>
//     is a cluster-scoped custom resource and /registry/<group>/<r>/<ns>/<name> a namespaced one;
//   - when the first segment is listed in twoSegmentResources: 'services' by default, for kube's
//     /registry/services/specs/<ns>/<name> and /registry/services/endpoints/<ns>/<name>.
// After the resource: two or more segments = namespaced (the first is the namespace), one = cluster-scoped.
// Names and namespaces never hold '/'. A list prefix parses the same way: '/registry/pods/' is the resource
// 'pods' (all namespaces), '/registry/pods/ns1/' is 'pods' in 'ns1'.
//
// parse() writes offsets into fields of the layout object (no allocation): a hot-path call reads them at once.

/** Namespace row of cluster-scoped kube keys (kube namespaces are DNS labels: no parentheses). */
export const CLUSTER_SCOPED = '(cluster)';
/** Namespace and resource of keys outside the kube layout. */
export const NOT_KUBE = '(none)';
/** The row that takes what a bounded table has no room for. */
export const OTHER = '(other)';
/** Cold prefix of keys that have no '/' to group them by. */
export const NO_PREFIX = '(other)';

/** Verbs: kube's as kube-apiserver issues them, then plain etcd verbs for other keys and other shapes. */
export const Verb = {
  get: 0, // Range on one key
  list: 1, // Range over [key, rangeEnd)
  count: 2, // Range with count_only
  create: 3, // Txn: create_revision(key) = 0 ? put key
  update: 4, // Txn: mod_revision(key) = N ? put key : range key
  delete: 5, // Txn: mod_revision(key) = N ? delete key : range key; or a DeleteRange
  watch: 6, // Watch created on a key or a prefix
  put: 7, // a plain Put
  range: 8, // a Range on a key outside the layout
  txn: 9, // any other Txn
  expire: 10, // a key deleted because its lease ended (expiry or revoke)
} as const;
export type VerbId = (typeof Verb)[keyof typeof Verb];
export const VERB_NAMES: readonly string[] = ['get', 'list', 'count', 'create', 'update', 'delete', 'watch', 'put', 'range', 'txn', 'expire'];

// mvcc's CompareTarget and CompareResult values (etcdserverpb).
const CMP_EQUAL = 0;
const CMP_CREATE = 1;
const CMP_MOD = 2;

/** The parts of a Txn the classifier reads; mvcc's TxnRequest fits it. */
export interface TxnCompareLike {
  result: number;
  target: number;
  key: Buffer;
  number: bigint;
}
export interface TxnOpLike {
  range?: { key: Buffer; rangeEnd: Buffer; countOnly?: boolean };
  put?: { key: Buffer };
  deleteRange?: { key: Buffer; rangeEnd: Buffer };
  txn?: TxnLike;
}
export interface TxnLike {
  compare: readonly TxnCompareLike[];
  success: readonly TxnOpLike[];
  failure: readonly TxnOpLike[];
}

export class KeyLayout {
  readonly prefix: string;
  private readonly twoSegment: readonly string[];

  // Results of the last parse():
  /** The key is under the prefix and names a resource. */
  kube = false;
  /** The resource is key[resStart, resEnd) (kube keys only). */
  resStart = 0;
  resEnd = 0;
  /** The namespace is key[nsStart, nsEnd); nsStart = -1 when cluster-scoped or not kube. */
  nsStart = -1;
  nsEnd = -1;
  /** The cold-report prefix of the key is key[0, groupEnd): '/registry/<resource>/[<namespace>/]' for kube keys. */
  groupEnd = 0;

  constructor(prefix = '/registry/', twoSegmentResources: readonly string[] = ['services']) {
    if (prefix === '' || prefix === '/') throw new Error('ops: the key prefix must not be empty');
    // kube-apiserver's --etcd-prefix is given without the trailing '/' ('/registry'): keys are prefix + '/' + ...
    this.prefix = prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.twoSegment = twoSegmentResources;
  }

  /** Parses key into this object's fields; returns this.kube. Allocates nothing. */
  parse(key: string): boolean {
    this.nsStart = this.nsEnd = -1;
    const prefix = this.prefix;
    const p = prefix.length;
    if (!key.startsWith(prefix)) return this.notKube(key);
    const s1 = key.indexOf('/', p);
    if (s1 === p || key.length === p) {
      // The prefix itself, or '<prefix>/...': no resource.
      this.kube = false;
      this.groupEnd = p;
      return false;
    }
    this.kube = true;
    this.resStart = p;
    if (s1 < 0) {
      this.resEnd = key.length;
      this.groupEnd = p;
      return true;
    }
    let resEnd = s1;
    if (this.twoSegmentAt(key, p, s1)) {
      const s2 = key.indexOf('/', s1 + 1);
      if (s2 < 0) {
        this.resEnd = key.length;
        this.groupEnd = p;
        return true;
      }
      resEnd = s2;
    }
    this.resEnd = resEnd;
    const rest = resEnd + 1;
    const s3 = key.indexOf('/', rest);
    if (s3 < 0) {
      this.groupEnd = rest;
    } else {
      this.nsStart = rest;
      this.nsEnd = s3;
      this.groupEnd = s3 + 1;
    }
    return true;
  }

  /** The resource of the last parse (allocates: for reports and tests). */
  resourceOf(key: string): string {
    return this.parse(key) ? key.substring(this.resStart, this.resEnd) : NOT_KUBE;
  }

  /** The namespace of a key (allocates: for reports and tests). */
  namespaceOf(key: string): string {
    if (!this.parse(key)) return NOT_KUBE;
    return this.nsStart < 0 ? CLUSTER_SCOPED : key.substring(this.nsStart, this.nsEnd);
  }

  /** The cold-report prefix of a key (allocates: for reports and tests). */
  groupOf(key: string): string {
    this.parse(key);
    return this.groupEnd === 0 ? NO_PREFIX : key.substring(0, this.groupEnd);
  }

  /** The verb of a Range (call parse(key) first). */
  rangeVerb(isRange: boolean, countOnly: boolean): VerbId {
    if (!this.kube) return Verb.range;
    return !isRange ? Verb.get : countOnly ? Verb.count : Verb.list;
  }

  /**
   * The verb of a Txn whose first key (parsed) is key: kube's create, update and delete shapes on a kube
   * key; 'txn' otherwise.
   */
  txnVerb(txn: TxnLike): VerbId {
    if (!this.kube || txn.compare.length !== 1 || txn.success.length !== 1) return Verb.txn;
    const c = txn.compare[0];
    if (c.result !== CMP_EQUAL) return Verb.txn;
    const op = txn.success[0];
    if (c.target === CMP_CREATE && c.number === 0n) {
      return op.put && op.put.key.equals(c.key) ? Verb.create : Verb.txn;
    }
    if (c.target === CMP_MOD) {
      if (op.put && op.put.key.equals(c.key)) return Verb.update;
      if (op.deleteRange && op.deleteRange.rangeEnd.length === 0 && op.deleteRange.key.equals(c.key)) return Verb.delete;
    }
    return Verb.txn;
  }

  private twoSegmentAt(key: string, start: number, end: number): boolean {
    // Scan the segment only (indexOf('.') would run on to the end of a dotless key).
    for (let i = start; i < end; i++) if (key.charCodeAt(i) === 46) return true;
    const list = this.twoSegment;
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (r.length === end - start && key.startsWith(r, start)) return true;
    }
    return false;
  }

  /** Keys outside the layout are grouped by their first segment: '/a/' for '/a/b', 'a/' for 'a/b'. */
  private notKube(key: string): false {
    this.kube = false;
    const j = key.indexOf('/', key.charCodeAt(0) === 47 ? 1 : 0);
    this.groupEnd = j < 0 ? 0 : j + 1;
    return false;
  }
}

/** The first key a Txn names (the first compare's, else the first op's of either branch), or undefined. */
export function txnFirstKey(txn: TxnLike): Buffer | undefined {
  if (txn.compare.length > 0) return txn.compare[0].key;
  const op = txn.success[0] ?? txn.failure[0];
  if (!op) return undefined;
  if (op.put) return op.put.key;
  if (op.range) return op.range.key;
  if (op.deleteRange) return op.deleteRange.key;
  return op.txn ? txnFirstKey(op.txn) : undefined;
}
