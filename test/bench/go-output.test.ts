import { describe, expect, it } from "vitest";
import { parseGoOutput, pickSection } from "../../bench/lib/go-output";

// Output of etcd 3.4.23's tools/benchmark (captured against a local etcd), progress bar and all.
const PUT_PRECISE = "\r 0 / 50    0.00%\r 50 / 50  100.00% 0s\n\nSummary:\n  Total:\t0.055583325 secs.\n  Slowest:\t0.004304063 secs.\n  Fastest:\t0.000218877 secs.\n  Average:\t0.0011030147800000002 secs.\n  Stddev:\t0.0007779224346273423 secs.\n  Requests/sec:\t899.5503597526775\n\nResponse time histogram:\n  0.000218877 [1]\t|∎∎\n  0.0006273956 [15]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0010359142 [11]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0014444327999999999 [10]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0018529514 [7]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0022614700000000002 [3]\t|∎∎∎∎∎∎∎∎\n  0.0026699886 [2]\t|∎∎∎∎∎\n  0.0030785072000000004 [0]\t|\n  0.0034870258 [0]\t|\n  0.0038955444 [0]\t|\n  0.004304063 [1]\t|∎∎\n\nLatency distribution:\n  10% in 0.000294519 secs.\n  25% in 0.000541659 secs.\n  50% in 0.001015746 secs.\n  75% in 0.001597764 secs.\n  90% in 0.002242376 secs.\n  95% in 0.002601743 secs.\n\n";
const ALL_ERRORS = "\r 0 / 20    0.00%\r 20 / 20  100.00% 0s\n\nError distribution:\n  [20]\tetcdserver: request is too large\n\n";
const WATCH = "\r 0 / 6    0.00%\r 6 / 6  100.00% 0s\nWatch creation summary:\n\nSummary:\n  Total:\t0.0030 secs.\n  Slowest:\t0.0017 secs.\n  Fastest:\t0.0001 secs.\n  Average:\t0.0007 secs.\n  Stddev:\t0.0006 secs.\n  Requests/sec:\t1980.2555\n\nResponse time histogram:\n  0.0001 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0002 [2]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0004 [0]\t|\n  0.0006 [0]\t|\n  0.0007 [0]\t|\n  0.0009 [0]\t|\n  0.0011 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0012 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0014 [0]\t|\n  0.0016 [0]\t|\n  0.0017 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n\nLatency distribution:\n  10% in 0.0002 secs.\n  25% in 0.0002 secs.\n  50% in 0.0009 secs.\n  75% in 0.0017 secs.\n\r 0 / 24    0.00%\r 24 / 24  100.00% 0s\nWatch events received summary:\n\nSummary:\n  Total:\t0.0320 secs.\n  Slowest:\t0.0000 secs.\n  Fastest:\t0.0000 secs.\n  Average:\t0.0000 secs.\n  Stddev:\t0.0000 secs.\n  Requests/sec:\t749.2559\n\nResponse time histogram:\n  0.0000 [5]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0000 [9]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0000 [0]\t|\n  0.0000 [3]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0000 [1]\t|∎∎∎∎\n  0.0000 [3]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  0.0000 [1]\t|∎∎∎∎\n  0.0000 [1]\t|∎∎∎∎\n  0.0000 [0]\t|\n  0.0000 [0]\t|\n  0.0000 [1]\t|∎∎∎∎\n\nLatency distribution:\n  10% in 0.0000 secs.\n  25% in 0.0000 secs.\n  50% in 0.0000 secs.\n  75% in 0.0000 secs.\n  90% in 0.0000 secs.\n  95% in 0.0000 secs.\n";

describe("parseGoOutput", () => {
  it("reads a put report printed with --precise (seconds → ms, counts from the histogram)", () => {
    const [s, ...rest] = parseGoOutput(PUT_PRECISE);
    expect(rest).toHaveLength(0);
    expect(s.title).toBe("");
    expect(s.count).toBe(50);
    expect(s.errors).toBe(0);
    expect(s.totalSec).toBeCloseTo(0.055583325, 9);
    expect(s.slowest).toBeCloseTo(4.304063, 6);
    expect(s.rps).toBeGreaterThan(0);
    expect(s.pct["50"]).toBeGreaterThan(0);
    expect(s.pct["50"]).toBeLessThanOrEqual(s.pct["90"]);
    expect(s.pct["99.9"]).toBe(0); // not printed for 50 samples: Go leaves it 0
  });
  it("reads a run where every request failed (no Summary, only errors)", () => {
    const secs = parseGoOutput(ALL_ERRORS);
    expect(secs).toHaveLength(1);
    expect(secs[0]).toMatchObject({ count: 0, errors: 20, rps: 0 });
    expect(secs[0].errorDist).toEqual({ "etcdserver: request is too large": 20 });
  });
  it("reads both reports of watch, by title", () => {
    const secs = parseGoOutput(WATCH);
    expect(secs.map((s) => s.title)).toEqual(["Watch creation summary", "Watch events received summary"]);
    expect(secs[0].count).toBe(6);
    expect(secs[1].count).toBe(24);
    expect(secs[0].pct["75"]).toBeCloseTo(1.7, 6);
    expect(pickSection(secs, /events received/).rps).toBeCloseTo(749.2559, 4);
    expect(pickSection(secs).title).toBe("Watch events received summary");
    expect(() => pickSection(secs, /nope/)).toThrow(/no report/);
  });
  it("reads errors after a summary, and 3.5 txn-mixed titles", () => {
    const text = [
      "bench with linearizable range",
      "Total Read Ops: 3",
      "Details:",
      "Summary:",
      "  Total:\t1.0000 secs.",
      "  Slowest:\t0.0030 secs.",
      "  Fastest:\t0.0010 secs.",
      "  Average:\t0.0020 secs.",
      "  Stddev:\t0.0010 secs.",
      "  Requests/sec:\t3.0000",
      "",
      "Latency distribution:",
      "  10% in 0.0010 secs.",
      "",
      "Error distribution:",
      "  [2]\tcontext deadline exceeded",
      "  [1]\tetcdserver: too many requests",
      "",
      "Total Write Ops: 1",
      "Details:",
      "Summary:",
      "  Total:\t1.0000 secs.",
      "  Requests/sec:\t1.0000",
    ].join("\n");
    const secs = parseGoOutput(text);
    expect(secs.map((s) => s.title)).toEqual(["Total Read Ops", "Total Write Ops"]);
    expect(secs[0]).toMatchObject({ count: 3, errors: 3, rps: 3, slowest: 3 });
    expect(secs[0].pct["10"]).toBe(1);
    expect(secs[1]).toMatchObject({ count: 1, errors: 0 });
  });
  it("finds nothing in unrelated text", () => {
    expect(parseGoOutput("dial error: connection refused\n")).toEqual([]);
  });
});
