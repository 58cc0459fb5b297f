import type { StepExecution } from "../api/types";
import { timelineBars } from "./bars";

function step(id: string, over: Partial<StepExecution>): StepExecution {
  return {
    id,
    step_id: id,
    agent_name: "echo",
    kind: "agent",
    depends_on: [],
    status: "PENDING",
    attempts: 0,
    input_data: null,
    output_data: null,
    error_message: null,
    task_id: null,
    started_at: null,
    completed_at: null,
    duration_ms: null,
    next_retry_at: null,
    attempt_history: [],
    ...over,
  };
}

const attempt = (n: number, outcome: string, start: string, end: string | null) => ({
  attempt: n,
  outcome,
  input_data: null,
  output_data: null,
  error_message: null,
  task_id: null,
  started_at: start,
  completed_at: end,
});

describe("timelineBars", () => {
  it("draws each attempt from the run's start, and an open one up to now", () => {
    const steps = [
      step("a", {
        status: "SUCCEEDED",
        attempt_history: [
          attempt(1, "failed", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
          attempt(2, "succeeded", "2026-01-01T00:00:03Z", "2026-01-01T00:00:04Z"),
        ] as StepExecution["attempt_history"],
      }),
      step("b", {
        status: "RUNNING",
        attempt_history: [attempt(1, "running", "2026-01-01T00:00:05Z", null)] as StepExecution["attempt_history"],
      }),
      step("c", {}),
    ];
    const now = Date.parse("2026-01-01T00:00:07Z");
    expect(timelineBars(steps, "2026-01-01T00:00:00Z", now)).toEqual([
      { step: "a", attempt: 1, outcome: "failed", start: 1000, end: 2000, open: false },
      { step: "a", attempt: 2, outcome: "succeeded", start: 3000, end: 4000, open: false },
      { step: "b", attempt: 1, outcome: "running", start: 5000, end: 7000, open: true },
    ]);
  });

  it("draws a waiting signal step as waiting, up to now", () => {
    const steps = [step("approve", { kind: "signal", status: "WAITING", started_at: "2026-01-01T00:00:02Z" })];
    const bars = timelineBars(steps, "2026-01-01T00:00:00Z", Date.parse("2026-01-01T00:00:09Z"));
    expect(bars).toEqual([{ step: "approve", attempt: 1, outcome: "WAITING", start: 2000, end: 9000, open: true }]);
  });
});
