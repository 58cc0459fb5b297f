/**
 * Read your writes (README, "Reading your writes"): every write answers with the position of its
 * last event; later reads send the highest position seen, so the projections they read have
 * caught up with what this tab did (or with what the live stream showed it).
 */
let highest = 0;

export const POSITION_HEADER = "X-Flowledger-Position";
export const MIN_POSITION_HEADER = "X-Flowledger-Min-Position";

export function sawPosition(position: number | string | null | undefined): void {
  const value = typeof position === "string" ? Number.parseInt(position, 10) : position;
  if (typeof value === "number" && Number.isFinite(value) && value > highest) highest = value;
}

export function highestPosition(): number {
  return highest;
}

export function resetPositions(): void {
  highest = 0;
}
