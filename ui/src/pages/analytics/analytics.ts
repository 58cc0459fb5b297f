/** The analytics page's pure parts: the ranges offered and the chart's datasets. */
import { TONE_COLOURS, statusLook } from "../../status/statuses";

export interface RangeChoice {
  id: string;
  label: string;
  hours: number;
  bucket: "hour" | "day" | "week";
}

export const RANGES: RangeChoice[] = [
  { id: "24h", label: "Last 24 hours", hours: 24, bucket: "hour" },
  { id: "7d", label: "Last 7 days", hours: 24 * 7, bucket: "day" },
  { id: "30d", label: "Last 30 days", hours: 24 * 30, bucket: "day" },
  { id: "90d", label: "Last 90 days", hours: 24 * 90, bucket: "week" },
];

export function rangeOf(id: string): RangeChoice {
  return RANGES.find((r) => r.id === id) ?? RANGES[1]!;
}

/** The query of a range ending now: the API rounds ``created_from`` down to the hour. */
export function rangeQuery(choice: RangeChoice, now = Date.now()) {
  return {
    created_from: new Date(now - choice.hours * 3_600_000).toISOString(),
    bucket: choice.bucket,
  };
}

export interface SeriesPoint {
  start: string;
  runs: number;
  by_status: Record<string, number>;
}

/** One stacked dataset per status that has runs, coloured as the status is everywhere else. */
export function statusDatasets(series: SeriesPoint[]) {
  const statuses = [...new Set(series.flatMap((p) => Object.keys(p.by_status)))].filter((status) =>
    series.some((p) => (p.by_status[status] ?? 0) > 0),
  );
  return statuses.map((status) => {
    const look = statusLook(status);
    return {
      status,
      label: look.label,
      data: series.map((p) => p.by_status[status] ?? 0),
      backgroundColor: TONE_COLOURS[look.tone],
      stack: "runs",
    };
  });
}

/** A share as a percentage with one decimal, or a dash when there is none. */
export function percent(share: number | null | undefined): string {
  return share == null ? "—" : `${(share * 100).toFixed(1)}%`;
}
