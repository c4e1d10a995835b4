// The auth package's public surface: the store (users, roles, permissions, revision), tokens and bcrypt
// helpers. Pure of gRPC; the server's applier and the API layer call these.
export * from './auth-store';
export * from './tokens';
export { hashPassword, comparePassword, effectiveBcryptCost, BCRYPT_DEFAULT_COST, BCRYPT_MIN_COST, BCRYPT_MAX_COST } from './password';
export { IntervalSet, UnifiedRangePermissions, permInterval } from './range-perms';
export { encodeUser, decodeUser, encodeRole, decodeRole, type User, type Role, type UserAddOptions } from './authpb';
