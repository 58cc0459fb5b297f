/**
 * A run's steps as timeline bars: one bar per attempt, on its step's row, from when it started to
 * when it ended (or to now, while it runs), in milliseconds since the run started.
 */
import type { StepExecution } from "../api/types";

export interface Bar {
  step: string;
  attempt: number;
  outcome: string;
  start: number;
  end: number;
  open: boolean;
}

function ms(at: string | null | undefined): number | null {
  if (!at) return null;
  const value = Date.parse(at);
  return Number.isNaN(value) ? null : value;
}

export function timelineBars(steps: StepExecution[], runStart: string | null, now: number): Bar[] {
  const attempts = steps.flatMap((step) =>
    step.attempt_history.length > 0
      ? step.attempt_history.map((a) => ({
          step: step.step_id,
          attempt: a.attempt,
          outcome: a.outcome,
          start: ms(a.started_at),
          end: ms(a.completed_at),
        }))
      : step.started_at
        ? [
            {
              step: step.step_id,
              attempt: Math.max(step.attempts, 1),
              // A wait or signal step that has not ended is waiting, not running (ADR 0016).
              outcome: step.completed_at ? step.status : step.status === "WAITING" ? "WAITING" : "running",
              start: ms(step.started_at),
              end: ms(step.completed_at),
            },
          ]
        : [],
  );
  const starts = attempts.map((a) => a.start).filter((s): s is number => s !== null);
  const origin = ms(runStart) ?? (starts.length ? Math.min(...starts) : now);
  return attempts
    .filter((a) => a.start !== null)
    .map((a) => ({
      step: a.step,
      attempt: a.attempt,
      outcome: a.outcome,
      start: Math.max(0, a.start! - origin),
      end: Math.max(0, (a.end ?? now) - origin),
      open: a.end === null,
    }));
}
