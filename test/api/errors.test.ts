import { describe, expect, it } from 'vitest';
import { answer, toServiceError } from '../../src/api/errors';
import { Errors, GrpcCode } from '../../src/errors';

// How a handler's outcome becomes a gRPC status: etcd's errors as they are, anything else INTERNAL and
// logged through the server's injected logger (never the console).

function logs() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  return { lines, log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields }) };
}

describe('toServiceError / answer', () => {
  it('passes etcd\'s errors through with their code and words, and logs nothing', () => {
    const s = logs();
    expect(toServiceError(s, Errors.keyNotFound)).toEqual({ code: Errors.keyNotFound.code, details: Errors.keyNotFound.message });
    expect(s.lines).toEqual([]);
  });

  it('answers anything else with INTERNAL and logs it at error through the injected logger', async () => {
    const s = logs();
    const got = await new Promise<unknown>((resolve) => answer(s, (err) => resolve(err), () => Promise.reject(new Error('engine broke'))));
    expect(got).toEqual({ code: GrpcCode.INTERNAL, details: 'plinth: internal error: engine broke' });
    expect(s.lines).toEqual([{ level: 'error', msg: 'internal error', fields: expect.objectContaining({ error: 'engine broke' }) }]);
  });
});
