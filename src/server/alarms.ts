import type { Backend } from '../storage';
import { decodeAlarmKey, encodeAlarmKey, legacyAlarmKey } from '../storage/etcd-layout';

export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;

export interface Alarm {
  memberId: bigint;
  alarm: number;
}

/** Active alarms, kept in the backend's alarm bucket so they survive a restart (as etcd's). */
export class AlarmStore {
  private readonly active = new Map<string, Alarm>();

  private constructor(private readonly backend: Backend) {}

  static async open(backend: Backend): Promise<AlarmStore> {
    const s = new AlarmStore(backend);
    await s.reload();
    return s;
  }

  /** Reads the alarms back from the backend (at start, or after a snapshot replaced it). */
  async reload(): Promise<void> {
    this.active.clear();
    await this.backend.scan('alarm', Buffer.alloc(0), undefined, (k) => {
      const a = decodeAlarmKey(k);
      this.active.set(key(a.memberId, a.alarm).toString('hex'), a);
    });
  }

  list(): Alarm[] {
    return [...this.active.values()];
  }

  has(alarm: number): boolean {
    for (const a of this.active.values()) if (a.alarm === alarm) return true;
    return false;
  }

  activate(memberId: bigint, alarm: number): Alarm {
    const k = key(memberId, alarm);
    const a = { memberId, alarm };
    this.active.set(k.toString('hex'), a);
    this.backend.put('alarm', k, Buffer.alloc(0));
    return a;
  }

  /** Returns the alarm removed, if it was active. */
  deactivate(memberId: bigint, alarm: number): Alarm | undefined {
    const k = key(memberId, alarm);
    const a = this.active.get(k.toString('hex'));
    if (!a) return undefined;
    this.active.delete(k.toString('hex'));
    this.backend.delete('alarm', k);
    // As an earlier Plinth wrote it, if it did.
    this.backend.delete('alarm', legacyAlarmKey(memberId, alarm));
    return a;
  }
}

/** etcd's key: the AlarmMember protobuf, so the backend is etcd's. */
function key(memberId: bigint, alarm: number): Buffer {
  return encodeAlarmKey(memberId, alarm);
}
