import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { StepExecution } from "../../api/types";
import { signIn, signOut } from "../../auth/credential";
import { StepsTable } from "./StepsTable";

const waiting: StepExecution = {
  id: "s1",
  step_id: "approve",
  agent_name: null,
  depends_on: ["draft"],
  status: "WAITING",
  attempts: 0,
  input_data: null,
  output_data: null,
  error_message: null,
  task_id: null,
  started_at: "2025-01-01T00:00:00Z",
  completed_at: null,
  duration_ms: null,
  next_retry_at: null,
  attempt_history: [],
  kind: "signal",
  signal: "approval",
  waiting_until: "2025-01-01T00:10:00Z",
};

function table(steps: StepExecution[], canSignal: boolean) {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <StepsTable steps={steps} runId="run-1" canSignal={canSignal} />
    </QueryClientProvider>,
  );
}

describe("a waiting signal step", () => {
  beforeEach(() => signIn({ kind: "api-key", secret: "flk_op" }, false));
  afterEach(() => signOut());

  it("sends its signal with the data typed, to that step", async () => {
    const sent: { path: string; body: unknown }[] = [];
    vi.stubGlobal("fetch", async (request: Request) => {
      sent.push({ path: new URL(request.url).pathname, body: await request.json() });
      return new Response(
        JSON.stringify({ run_id: "run-1", signal: "approval", step_id: "approve", status: "RUNNING" }),
        { status: 202, headers: { "content-type": "application/json" } },
      );
    });
    table([waiting], true);

    expect(screen.getByText("Signal")).toBeInTheDocument(); // the step's kind
    const data = screen.getByLabelText("Data for the signal “approval” (JSON)");
    fireEvent.change(data, { target: { value: '{"approved": true, "by": "ada"}' } });
    await userEvent.setup().click(screen.getByRole("button", { name: "Send approval" }));

    expect(await screen.findByText("Sent: the run goes on.")).toBeInTheDocument();
    expect(sent).toEqual([
      { path: "/api/v1/runs/run-1/signals/approval", body: { data: { approved: true, by: "ada" }, step_id: "approve" } },
    ]);
  });

  it("shows the server's objection to the data at the field", async () => {
    vi.stubGlobal("fetch", async () =>
      new Response(
        JSON.stringify({ detail: "Invalid signal data", errors: [{ location: "body", field: "data.approved", message: "is required" }] }),
        { status: 422, headers: { "content-type": "application/json" } },
      ),
    );
    table([waiting], true);

    await userEvent.setup().click(screen.getByRole("button", { name: "Send approval" }));

    expect(await screen.findByText("data.approved: is required")).toBeInTheDocument();
    expect(screen.getByLabelText("Data for the signal “approval” (JSON)")).toHaveAttribute("aria-invalid", "true");
  });

  it("refuses text that is not JSON without asking the server", async () => {
    const fetch = vi.fn();
    vi.stubGlobal("fetch", fetch);
    table([waiting], true);
    fireEvent.change(screen.getByLabelText("Data for the signal “approval” (JSON)"), { target: { value: "{yes" } });
    await userEvent.setup().click(screen.getByRole("button", { name: "Send approval" }));
    expect(screen.getByText("This is not JSON.")).toBeInTheDocument();
    expect(fetch).not.toHaveBeenCalled();
  });

  it("is not offered to those who may not signal, nor once the step is done", () => {
    table([waiting], false);
    expect(screen.queryByRole("button", { name: "Send approval" })).toBeNull();
    signOut();
  });

  it("is not offered once the step has its answer", () => {
    table([{ ...waiting, status: "SUCCEEDED" }], true);
    expect(screen.queryByRole("button", { name: "Send approval" })).toBeNull();
  });

  it("lists a map's instances by item", () => {
    table([{ ...waiting, step_id: "each[2].shout", kind: "agent", agent_name: "transform", status: "SUCCEEDED", parent_step_id: "each", index: 2, signal: null }], true);
    expect(screen.getByText("each[2].shout")).toBeInTheDocument();
    expect(screen.getByText("item 3 of each")).toBeInTheDocument();
    expect(screen.getByText("agent transform")).toBeInTheDocument();
  });
});
