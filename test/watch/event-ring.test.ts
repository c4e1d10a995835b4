import { describe, expect, it } from 'vitest';
import { EventRing } from '../../src/watch/event-ring';
import type { WatchEvent } from '../../src/watch/hub';

const entry = (rev: number, n: number) => ({ rev, events: new Array<WatchEvent>(n) });

describe('EventRing', () => {
  it('keeps the newest revisions within the event budget, across growth and wrap-around', () => {
    const ring = new EventRing(5000);
    // Revision r holds 1 + r % 3 events; 20k revisions wrap the buffer many times and grow it.
    for (let r = 1; r <= 20_000; r++) {
      ring.push(entry(r, 1 + (r % 3)));
      let events = 0;
      for (let i = 0; i < ring.length; i++) events += ring.at(i).events.length;
      if (r % 997 === 0) {
        expect(events).toBeLessThanOrEqual(5000);
        expect(ring.at(ring.length - 1).rev).toBe(r);
        // Oldest first, consecutive, and nothing dropped that still fits.
        for (let i = 1; i < ring.length; i++) expect(ring.at(i).rev).toBe(ring.at(i - 1).rev + 1);
        if (ring.at(0).rev > 1) expect(events + 1 + ((ring.at(0).rev - 1) % 3)).toBeGreaterThan(5000);
      }
    }
  });

  it('finds the first revision at or above a revision', () => {
    const ring = new EventRing(100);
    for (const r of [10, 12, 15, 20]) ring.push(entry(r, 1));
    const cases: [number, number][] = [[1, 0], [10, 0], [11, 1], [12, 1], [13, 2], [20, 3], [21, 4]];
    for (const [rev, idx] of cases) expect(ring.search(rev), `rev ${rev}`).toBe(idx);
  });

  it('always keeps the newest revision, even one larger than the budget', () => {
    const ring = new EventRing(3);
    ring.push(entry(1, 2));
    ring.push(entry(2, 10));
    expect(ring.length).toBe(1);
    expect(ring.at(0).rev).toBe(2);
  });
});
