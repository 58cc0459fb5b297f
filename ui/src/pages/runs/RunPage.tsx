import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Pause, Play, RotateCcw, Square } from "lucide-react";
import { useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { useRun, useRunSteps } from "../../api/queries";
import { useCan } from "../../auth/session";
import { Button } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { ConfirmButton } from "../../components/Dialog";
import { JsonBlock } from "../../components/JsonBlock";
import { ErrorNotice, Loading } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { Tabs } from "../../components/Tabs";
import { DateTime, RelativeTime, formatDuration } from "../../components/Time";
import { StepGraph } from "../../graph/StepGraph";
import type { GraphStep } from "../../graph/stepGraph";
import { useRunEvents } from "../../live/useRunEvents";
import type { StreamState } from "../../live/eventStream";
import { TERMINAL_RUN_STATUSES, statusLook } from "../../status/statuses";
import { StepTimeline } from "../../timeline/StepTimeline";
import { RunLogs } from "./RunLogs";
import { StepsTable } from "./StepsTable";
import { shortId } from "./RunsTable";

function LiveIndicator({ state }: { state: StreamState }) {
  const text = { connecting: "Connecting…", live: "Live", retrying: "Reconnecting…", closed: "Not live" }[state];
  return (
    <span className="inline-flex items-center gap-1.5 text-xs font-medium text-slate-700" role="status" aria-live="polite">
      <span
        aria-hidden="true"
        className={`size-2 rounded-full ${state === "live" ? "animate-pulse bg-emerald-600" : "bg-slate-400"}`}
      />
      {text}
    </span>
  );
}

export default function RunPage() {
  const { runId = "" } = useParams();
  const run = useRun(runId);
  const steps = useRunSteps(runId);
  const live = useRunEvents(runId);
  const canExecute = useCan("execute");
  const canSignal = useCan("signal");
  const queries = useQueryClient();
  const navigate = useNavigate();

  const refresh = () => queries.invalidateQueries({ queryKey: ["runs", runId] });
  const cancel = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/runs/{run_id}/cancel", { params: { path: { run_id: runId } } })),
    onSuccess: refresh,
  });
  const pause = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/runs/{run_id}/pause", { params: { path: { run_id: runId } }, body: null })),
    onSuccess: refresh,
  });
  const resume = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/runs/{run_id}/resume", { params: { path: { run_id: runId } } })),
    onSuccess: refresh,
  });
  const retry = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/runs/{run_id}/retry", { params: { path: { run_id: runId } } })),
    onSuccess: refresh,
  });

  const graphSteps: GraphStep[] = useMemo(
    () =>
      (steps.data ?? []).map((s) => ({
        id: s.step_id,
        agent: s.agent_name,
        kind: s.kind,
        signal: s.signal,
        dependsOn: s.depends_on,
        status: s.status,
        attempts: s.attempts,
      })),
    [steps.data],
  );

  // A step picked in the graph opens in the Steps tab below.
  const [tab, setTab] = useState("steps");
  const showStep = (stepId: string) => {
    setTab("steps");
    window.requestAnimationFrame(() => {
      const details = document.querySelector<HTMLDetailsElement>(`[data-step-row="${CSS.escape(stepId)}"] details`);
      if (!details) return;
      details.open = true;
      details.scrollIntoView({ behavior: "smooth", block: "center" });
      details.querySelector("summary")?.focus();
    });
  };

  if (run.isPending) return <Loading what="Loading the run" />;
  if (run.isError) return <ErrorNotice error={run.error} />;
  const r = run.data;
  const finished = TERMINAL_RUN_STATUSES.has(r.status);
  const cancellable = canExecute && statusLook(r.status).active === true;
  const pausable = canExecute && ["PENDING", "RUNNING", "WAITING"].includes(r.status);
  const resumable = canExecute && r.status === "PAUSED";
  const retryable = canExecute && (r.status === "FAILED" || r.status === "CANCELLED");

  return (
    <div className="space-y-5">
      <PageHeader
        title={
          <span className="flex flex-wrap items-center gap-3">
            Run <span className="font-mono">{shortId(r.id)}</span>
            <StatusBadge status={r.status} className="text-sm" />
          </span>
        }
        subtitle={
          <span className="flex flex-wrap items-center gap-x-3 gap-y-1">
            <span>
              <Link className="font-medium text-indigo-800 hover:underline" to={`/workflows/${r.workflow_id}`}>
                {r.workflow_name}
              </Link>{" "}
              version {r.workflow_version}
            </span>
            <span>
              started <RelativeTime at={r.started_at ?? r.created_at} />
            </span>
            <span>{formatDuration(r.duration_ms)}</span>
            {r.retry_count > 0 && <span>retried {r.retry_count === 1 ? "once" : `${r.retry_count} times`}</span>}
            <LiveIndicator state={live.state} />
          </span>
        }
        actions={
          <>
            {cancellable && (
              <ConfirmButton
                variant="danger"
                title="Cancel this run?"
                description="The step in flight is cancelled at its agent and no further step starts. A cancelled run can be retried."
                confirmLabel="Cancel the run"
                onConfirm={() => cancel.mutate()}
                busy={cancel.isPending}
              >
                <Square aria-hidden="true" className="size-4" /> Cancel run
              </ConfirmButton>
            )}
            {pausable && (
              <Button onClick={() => pause.mutate()} busy={pause.isPending}>
                <Pause aria-hidden="true" className="size-4" /> Pause run
              </Button>
            )}
            {resumable && (
              <Button variant="primary" onClick={() => resume.mutate()} busy={resume.isPending}>
                <Play aria-hidden="true" className="size-4" /> Resume run
              </Button>
            )}
            {retryable && (
              <Button variant="primary" onClick={() => retry.mutate()} busy={retry.isPending}>
                <RotateCcw aria-hidden="true" className="size-4" /> Retry run
              </Button>
            )}
            {canExecute && (
              <Button variant="ghost" onClick={() => navigate(`/workflows/${r.workflow_id}/execute`)}>
                Run again…
              </Button>
            )}
          </>
        }
      />
      {cancel.isError && <ErrorNotice error={cancel.error} title="The run could not be cancelled." />}
      {retry.isError && <ErrorNotice error={retry.error} title="The run could not be retried." />}
      {pause.isError && <ErrorNotice error={pause.error} title="The run could not be paused." />}
      {resume.isError && <ErrorNotice error={resume.error} title="The run could not be resumed." />}
      {r.error_message && (
        <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-900">
          <p className="font-semibold">
            {r.failed_step ? (
              <>
                Step <span className="font-mono">{r.failed_step}</span> failed
              </>
            ) : (
              "The run failed"
            )}
          </p>
          <p className="mt-1 break-words">{r.error_message}</p>
        </div>
      )}

      <div className="grid gap-5 xl:grid-cols-2">
        <Card title="Graph">
          {steps.isError ? (
            <ErrorNotice error={steps.error} />
          ) : (
            <StepGraph
              steps={graphSteps}
              label={`Steps of run ${shortId(r.id)} by status`}
              onSelect={showStep}
            />
          )}
        </Card>
        <Card title="Timeline">
          <StepTimeline steps={steps.data ?? []} runStart={r.started_at} live={!finished} />
        </Card>
      </div>

      <Card>
        <Tabs
          label="Run details"
          value={tab}
          onValueChange={setTab}
          tabs={[
            { id: "steps", label: "Steps", content: <StepsTable steps={steps.data ?? []} runId={r.id} canSignal={canSignal} /> },
            {
              id: "data",
              label: "Input and output",
              content: (
                <div className="grid gap-4 md:grid-cols-3">
                  <div>
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Input</h3>
                    <JsonBlock value={r.input_data} label="Run input" />
                  </div>
                  <div>
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Variables</h3>
                    <JsonBlock value={r.variables} label="Run variables" />
                  </div>
                  <div>
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Output</h3>
                    <JsonBlock value={r.output_data} label="Run output" />
                  </div>
                </div>
              ),
            },
            { id: "logs", label: "Logs", content: <RunLogs runId={r.id} steps={steps.data ?? []} /> },
            {
              id: "details",
              label: "Details",
              content: (
                <dl className="grid gap-x-6 gap-y-2 text-sm sm:grid-cols-[max-content_1fr]">
                  <dt className="font-medium text-slate-700">Run id</dt>
                  <dd className="font-mono break-all">{r.id}</dd>
                  <dt className="font-medium text-slate-700">Triggered by</dt>
                  <dd className="font-mono break-all">{r.triggered_by}</dd>
                  <dt className="font-medium text-slate-700">Idempotency key</dt>
                  <dd className="font-mono">{r.idempotency_key ?? "—"}</dd>
                  <dt className="font-medium text-slate-700">Created</dt>
                  <dd><DateTime at={r.created_at} /></dd>
                  <dt className="font-medium text-slate-700">Started</dt>
                  <dd><DateTime at={r.started_at} /></dd>
                  <dt className="font-medium text-slate-700">Completed</dt>
                  <dd><DateTime at={r.completed_at} /></dd>
                  {r.cancelled_by && (
                    <>
                      <dt className="font-medium text-slate-700">Cancelled by</dt>
                      <dd className="font-mono">{r.cancelled_by}</dd>
                    </>
                  )}
                </dl>
              ),
            },
          ]}
        />
      </Card>
    </div>
  );
}
