import { percent, rangeOf, rangeQuery, statusDatasets } from "./analytics";

describe("the analytics page's figures", () => {
  it("stacks a dataset per status that had runs, in the status's colour", () => {
    const series = [
      { start: "2026-01-01T00:00:00Z", runs: 3, by_status: { SUCCEEDED: 2, FAILED: 1, PENDING: 0 } },
      { start: "2026-01-02T00:00:00Z", runs: 1, by_status: { SUCCEEDED: 1, FAILED: 0, PENDING: 0 } },
    ];
    const sets = statusDatasets(series);
    expect(sets.map((s) => [s.status, s.data])).toEqual([
      ["SUCCEEDED", [2, 1]],
      ["FAILED", [1, 0]],
    ]);
    expect(sets[0]!.backgroundColor).not.toBe(sets[1]!.backgroundColor);
    expect(new Set(sets.map((s) => s.stack)).size).toBe(1);
  });

  it("asks for the range ending now, in buckets that suit it", () => {
    const now = Date.parse("2026-03-10T12:30:00Z");
    expect(rangeQuery(rangeOf("24h"), now)).toEqual({ created_from: "2026-03-09T12:30:00.000Z", bucket: "hour" });
    expect(rangeOf("nonsense").id).toBe("7d");
  });

  it("shows a success rate as a percentage, and none as a dash", () => {
    expect(percent(0.8947)).toBe("89.5%");
    expect(percent(null)).toBe("—");
  });
});
