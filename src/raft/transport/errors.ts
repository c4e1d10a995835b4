// Errors the peer transport hands to its caller. A peer problem is never an exception thrown into
// the event loop: it is one of these (on a promise) or a log line plus a callback.

export type TransportErrorCode =
  /** No live stream connection to the peer (or the peer is not known). */
  | 'NOT_CONNECTED'
  /** The answer did not come within the request's timeout. */
  | 'TIMEOUT'
  /** limits.maxInflightRequests requests to this peer are already waiting for answers. */
  | 'TOO_MANY_REQUESTS'
  /** The peer's output queue is at its byte or message limit. */
  | 'QUEUE_FULL'
  /** The request does not fit in one frame (limits.maxFrameBytes). */
  | 'TOO_LARGE'
  /** The connection was lost (or replaced) before the answer came. */
  | 'CONNECTION_LOST'
  /** The peer was removed with removePeer() while the request waited. */
  | 'PEER_REMOVED'
  /** close() was called. */
  | 'CLOSED';

/** A request could not be delivered or answered for a transport reason (not the remote handler). */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The remote onRequest handler threw or rejected; message is its error's message. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
}

/** Bytes from a peer that break the protocol (frame too large, unknown frame type, bad field). */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A Message that cannot be encoded, or bytes that do not decode to a valid Message. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}
