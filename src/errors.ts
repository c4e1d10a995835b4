// Every error a client can see, as etcd words it. Clients match on these strings, so they are copied
// character for character from etcd's rpctypes; the numeric codes are gRPC's.

export const GrpcCode = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9,
  ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCodeValue = (typeof GrpcCode)[keyof typeof GrpcCode];

/** An error with the gRPC status and message etcd answers with. */
/** grpc-go's names of the status codes (codes.Code.String()). */
export const CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented',
  'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];

/** A gRPC status error's words as grpc-go writes them (etcd puts these in a refused watch's cancel reason). */
export function grpcErrorString(err: { code: number; message: string }): string {
  return `rpc error: code = ${CODE_NAMES[err.code] ?? `Code(${err.code})`} desc = ${err.message}`;
}

export class EtcdError extends Error {
  constructor(readonly code: GrpcCodeValue, message: string) {
    super(message);
    this.name = 'EtcdError';
  }
}

const e = (code: GrpcCodeValue, message: string) => new EtcdError(code, message);
const C = GrpcCode;

// Shared instances: these are values, compared by identity in tests and thrown without allocation.
export const Errors = {
  emptyKey: e(C.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(C.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(C.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(C.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(C.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(C.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  compacted: e(C.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(C.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  noSpace: e(C.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  leaseNotFound: e(C.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExist: e(C.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: e(C.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  memberNotFound: e(C.NOT_FOUND, 'etcdserver: member not found'),
  memberExist: e(C.FAILED_PRECONDITION, 'etcdserver: member ID already exist'),
  peerUrlExist: e(C.FAILED_PRECONDITION, 'etcdserver: Peer URLs already exists'),
  // etcd maps ErrNotEnoughStartedMembers to a client-side error, not a gRPC status: clients see UNKNOWN.
  memberNotEnoughStarted: e(C.UNKNOWN, 'etcdserver: re-configuration failed due to not enough started members'),
  memberBadUrls: e(C.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'),
  memberNotLearner: e(C.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  learnerNotReady: e(C.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member which is in sync with leader'),
  tooManyLearners: e(C.FAILED_PRECONDITION, 'etcdserver: too many learner members in cluster'),
  unhealthy: e(C.UNAVAILABLE, 'etcdserver: unhealthy cluster'),
  notSupportedForLearner: e(C.UNAVAILABLE, 'etcdserver: rpc not supported for learner'),
  badLeaderTransferee: e(C.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
  // etcd has no gRPC mapping for ErrTimeoutLeaderTransfer: it reaches clients as UNKNOWN with these words.
  timeoutLeaderTransfer: e(C.UNKNOWN, 'etcdserver: request timed out, leader transfer took too long'),
  requestTooLarge: e(C.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  tooManyRequests: e(C.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'),
  authNotEnabled: e(C.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  rootUserNotExist: e(C.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: e(C.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: e(C.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: e(C.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: e(C.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: e(C.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: e(C.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: e(C.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: e(C.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: e(C.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: e(C.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: e(C.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  invalidAuthToken: e(C.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: e(C.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  authOldRevision: e(C.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
  // etcd's v3rpc has no gRPC mapping for these two auth errors: clients see UNKNOWN with the auth package's words.
  noPasswordUser: e(C.UNKNOWN, 'auth: authentication failed, password was given for no password user'),
  authVerifyOnly: e(C.UNKNOWN, 'auth: token signing attempted with verify-only key'),
  stopped: e(C.UNAVAILABLE, 'etcdserver: server stopped'),
  timeout: e(C.UNAVAILABLE, 'etcdserver: request timed out'),
  timeoutDueToLeaderFail: e(C.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure'),
  timeoutDueToConnectionLost: e(C.UNAVAILABLE, 'etcdserver: request timed out, possibly due to connection lost'),
  noLeader: e(C.UNAVAILABLE, 'etcdserver: no leader'),
  notLeader: e(C.FAILED_PRECONDITION, 'etcdserver: not leader'),
  leaderChanged: e(C.UNAVAILABLE, 'etcdserver: leader changed'),
  notCapable: e(C.UNAVAILABLE, 'etcdserver: not capable'),
  corrupt: e(C.DATA_LOSS, 'etcdserver: corrupt cluster'),
  // v3election's errors are plain Go errors in etcd, so clients see them as UNKNOWN with these words.
  electionNotLeader: e(C.UNKNOWN, 'election: not leader'),
  electionNoLeader: e(C.UNKNOWN, 'election: no leader'),
  missingLeaderKey: e(C.UNKNOWN, '"leader" field must be provided'),
  canceled: e(C.CANCELLED, 'context canceled'),
} as const;

/**
 * etcd's maintenance server (Defragment, Snapshot, Hash, HashKV) passes the auth package's errors on
 * unconverted: clients see gRPC Unknown with the auth package's words ("auth: permission denied").
 */
const UNCONVERTED_AUTH = new Map<EtcdError, EtcdError>([
  [Errors.permissionDenied, e(C.UNKNOWN, 'auth: permission denied')],
  [Errors.userEmpty, e(C.UNKNOWN, 'auth: user name is empty')],
  [Errors.userNotFound, e(C.UNKNOWN, 'auth: user not found')],
  [Errors.invalidAuthToken, e(C.UNKNOWN, 'auth: invalid auth token')],
]);

/** The error as etcd's maintenance server answers it (see UNCONVERTED_AUTH); others unchanged. */
export function asMaintenanceError(err: unknown): unknown {
  return (err instanceof EtcdError && UNCONVERTED_AUTH.get(err)) || err;
}
