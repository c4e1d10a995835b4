import { describe, expect, it } from 'vitest';
import { ArrayFreelist, Freelist, MapFreelist, mergeSorted } from '../../../src/storage/bolt/freelist';
import { PAGE_HEADER_SIZE, PageView } from '../../../src/storage/bolt/page';

// bbolt's freelist_test.go cases, for both kinds, and a random sequence of commits checked against a
// plain set of free pages.

describe.each(['array', 'map'] as const)('%s freelist', (type) => {
  const make = (ids: number[] = []) => {
    const f = Freelist.create(type);
    f.readIds(ids);
    return f;
  };

  it('frees a page and its overflow pages as pending, and refuses a double free', () => {
    const f = make();
    f.free(100, 12, 3);
    expect([...f.pending.get(100)!.ids]).toEqual([12, 13, 14, 15]);
    expect(() => f.free(101, 13, 0)).toThrow(/page 13 already freed/);
    expect(() => f.free(101, 1, 0)).toThrow(/cannot free page 0 or 1/);
  });

  it('releases pending pages of a transaction and older', () => {
    const f = make();
    f.free(100, 12, 1);
    f.free(100, 9, 0);
    f.free(102, 39, 0);
    f.release(100);
    f.release(101);
    expect(f.getFreePageIds()).toEqual([9, 12, 13]);
    f.release(102);
    expect(f.getFreePageIds()).toEqual([9, 12, 13, 39]);
  });

  it('releaseRange frees only pages allocated and freed between readers (TestFreelist_releaseRange)', () => {
    // Pages allocated by tx 100 and freed by tx 200, with a reader at 150: not released; without it, released.
    const f = make([3, 4, 5]);
    expect(f.allocate(100, 3)).toBe(3);
    f.free(200, 3, 2);
    f.releaseRange(101, 199);
    expect(f.getFreePageIds()).toEqual([]);
    f.releaseRange(100, 200);
    expect(f.getFreePageIds()).toEqual([3, 4, 5]);
  });

  it('allocates contiguous runs', () => {
    const f = make([3, 4, 5, 6, 7, 9, 12, 13, 18]);
    const three = f.allocate(1, 3);
    expect([3, 4, 5].includes(three)).toBe(true);
    expect(f.allocate(1, 3)).toBe(0); // no run of 3 left except... 6,7 + 9 is not contiguous
    const two = f.allocate(1, 2);
    expect([6, 12].includes(two)).toBe(true);
    expect(f.freeCount()).toBe(9 - 5);
    for (const id of [three, three + 1, three + 2, two, two + 1]) expect(f.freed(id)).toBe(false);
  });

  it('rolls back a transaction: its frees undone, pages it allocated and freed free again', () => {
    const f = make([3, 4]);
    const p = f.allocate(7, 1);
    f.free(7, p, 0);
    f.free(7, 20, 0); // allocated by an earlier tx (unknown: alloctx 0)
    f.rollback(7);
    expect(f.pending.size).toBe(0);
    expect(f.freed(20)).toBe(false);
    expect(f.getFreePageIds()).toEqual([3, 4]);
  });

  it('reads and writes a freelist page, with the count in the first element past 0xFFFF', () => {
    for (const n of [0, 5, 0xffff + 10]) {
      const f = make(Array.from({ length: n }, (_, i) => i * 2 + 2));
      f.free(9, 1_000_000, 0);
      const buf = Buffer.alloc(f.size() + 8);
      f.write(buf, 7, 0);
      const g = Freelist.create(type);
      g.read(new PageView(buf, 0));
      expect(g.freeCount()).toBe(n + 1); // pending pages are written as free
      expect(g.getFreePageIds()[n]).toBe(1_000_000);
      if (n > 0xffff) expect(buf.readUInt16LE(10)).toBe(0xffff);
      expect(f.size()).toBe(PAGE_HEADER_SIZE + 8 * (n + 1 + (n + 1 >= 0xffff ? 1 : 0)));
    }
  });

  it('random commits: allocations are always free runs, frees come back, counts agree with a plain set', () => {
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const f = make(Array.from({ length: 500 }, (_, i) => i + 2).filter((i) => i % 7 !== 0));
    const free = new Set(f.getFreePageIds());
    const used: [number, number][] = [];
    let hwm = 600;
    for (let txid = 1; txid < 400; txid++) {
      const pending: number[] = [];
      for (let k = rand(5); k > 0 && used.length; k--) {
        const [id, n] = used.splice(rand(used.length), 1)[0];
        f.free(txid, id, n - 1);
        for (let i = 0; i < n; i++) pending.push(id + i);
      }
      for (let k = rand(5); k > 0; k--) {
        const n = 1 + rand(4);
        let id = f.allocate(txid, n);
        if (id === 0) {
          id = hwm;
          hwm += n;
        } else for (let i = 0; i < n; i++) expect(free.delete(id + i), `page ${id + i} allocated while not free`).toBe(true);
        used.push([id, n]);
      }
      f.release(txid);
      for (const p of pending) free.add(p);
      expect(f.freeCount()).toBe(free.size);
    }
    expect(new Set(f.getFreePageIds())).toEqual(free);
  });
});

describe('map freelist spans', () => {
  it('merges a released page with its neighbours (forward and backward maps)', () => {
    const f = new MapFreelist();
    f.readIds([3, 4, 8, 9]);
    expect([...f.forwardMap]).toEqual([[3, 2], [8, 2]]);
    f.free(5, 5, 2); // 5, 6, 7
    f.release(5);
    expect([...f.forwardMap]).toEqual([[3, 7]]);
    expect([...f.backwardMap]).toEqual([[9, 7]]);
    expect([...f.freemaps.keys()]).toEqual([7]);
    expect(f.allocate(6, 7)).toBe(3);
    expect(f.freeCount()).toBe(0);
  });

  it('splits a larger span when no span has the exact size', () => {
    const f = new MapFreelist();
    f.readIds([10, 11, 12, 13, 14]);
    expect(f.allocate(1, 2)).toBe(10);
    expect([...f.forwardMap]).toEqual([[12, 3]]);
  });

  it('array and map agree on what is free after the same frees and releases', () => {
    const a = new ArrayFreelist();
    const m = new MapFreelist();
    for (const f of [a, m]) {
      f.readIds([2, 3, 10]);
      f.free(1, 20, 4);
      f.free(1, 4, 0);
      f.release(1);
    }
    expect(m.getFreePageIds()).toEqual(a.getFreePageIds());
    expect(mergeSorted([1, 5], [2, 3, 9])).toEqual([1, 2, 3, 5, 9]);
  });
});
