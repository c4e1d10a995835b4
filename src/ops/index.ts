// Ops analytics (issue #19): see tracker.ts.
export { OpsTracker, ReportJob, NO_CLIENT, NOT_LIVE } from './tracker';
export type { OpsTrackerOptions, LiveKeySource, ReportOptions, OpsReport, LongestRow, HotRow, NamespaceRow, RequestRow, ClientRow, ColdRow } from './tracker';
export { KeyLayout, Verb, VERB_NAMES, CLUSTER_SCOPED, NOT_KUBE, OTHER, NO_PREFIX, txnFirstKey } from './layout';
export type { VerbId, TxnLike, TxnOpLike, TxnCompareLike } from './layout';
export { SpaceSaving } from './space-saving';
export type { SpaceSavingEntry } from './space-saving';
export { RangeInterner } from './interner';
