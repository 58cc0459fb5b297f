import { ChevronRight } from "lucide-react";
import type { StepExecution } from "../../api/types";
import { JsonBlock } from "../../components/JsonBlock";
import { StatusBadge } from "../../components/StatusBadge";
import { DateTime, formatDuration } from "../../components/Time";
import { instanceOf, kindLook, stepSummary } from "../../graph/stepKinds";
import { SignalForm } from "./SignalForm";

function KindBadge({ kind }: { kind: string | undefined }) {
  const look = kindLook(kind);
  return (
    <span className="inline-flex items-center gap-1 rounded bg-slate-100 px-1.5 py-0.5 text-xs font-medium text-slate-800" data-kind={kind ?? "agent"}>
      <look.Icon aria-hidden="true" className="size-3.5" /> {look.label}
    </span>
  );
}

/**
 * Each step with its attempts; a step opens to show its input, output, error and attempts.
 * Steps of a map or loop are listed by instance (``each[2].shout``); a WAITING signal step
 * offers the form that sends its signal to those who may (``canSignal``).
 */
export function StepsTable({
  steps,
  runId,
  canSignal = false,
}: {
  steps: StepExecution[];
  runId?: string;
  canSignal?: boolean;
}) {
  return (
    <ul aria-label="Steps" className="divide-y divide-slate-200 rounded-md ring-1 ring-slate-200">
      {steps.map((step) => (
        <li key={step.step_id} data-step-row={step.step_id} data-status={step.status}>
          <details className="group">
            <summary className="flex cursor-pointer list-none flex-wrap items-center gap-x-3 gap-y-1 px-3 py-2 hover:bg-slate-50">
              <ChevronRight aria-hidden="true" className="size-4 text-slate-500 transition-transform group-open:rotate-90" />
              <span className="font-mono text-sm font-semibold text-slate-900">{step.step_id}</span>
              <StatusBadge status={step.status} />
              <KindBadge kind={step.kind} />
              {instanceOf(step.step_id) && (
                <span className="text-xs text-slate-700">
                  {step.index != null && step.index === instanceOf(step.step_id)!.index
                    ? `item ${step.index + 1} of ${step.parent_step_id ?? instanceOf(step.step_id)!.parent}`
                    : `in ${instanceOf(step.step_id)!.parent}`}
                </span>
              )}
              {(step.kind ?? "agent") === "agent" || step.signal ? (
                <span className="text-xs text-slate-700">{stepSummary({ kind: step.kind, agent: step.agent_name, signal: step.signal })}</span>
              ) : null}
              {step.status === "WAITING" && step.waiting_until && (
                <span className="text-xs text-amber-900">
                  {step.kind === "signal" ? "times out" : "until"} <DateTime at={step.waiting_until} />
                </span>
              )}
              <span className="text-xs text-slate-700">
                {step.attempts} {step.attempts === 1 ? "attempt" : "attempts"}
              </span>
              <span className="ml-auto text-xs text-slate-700">{formatDuration(step.duration_ms)}</span>
            </summary>
            <div className="space-y-3 px-3 pb-3 sm:pl-10">
              {step.error_message && (
                <p className="rounded bg-red-50 p-2 text-sm text-red-900">{step.error_message}</p>
              )}
              <div className="grid gap-3 md:grid-cols-2">
                <div>
                  <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Input</h3>
                  <JsonBlock value={step.input_data} label={`Input of ${step.step_id}`} />
                </div>
                <div>
                  <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Output</h3>
                  <JsonBlock value={step.output_data} label={`Output of ${step.step_id}`} />
                </div>
              </div>
              {step.attempt_history.length > 0 && (
                <ol className="space-y-1 text-sm">
                  {step.attempt_history.map((a) => (
                    <li key={a.attempt} className="flex flex-wrap items-center gap-2">
                      <span className="text-slate-700">Attempt {a.attempt}</span>
                      <StatusBadge status={a.outcome} />
                      {a.error_message && <span className="text-red-800">{a.error_message}</span>}
                    </li>
                  ))}
                </ol>
              )}
            </div>
          </details>
          {canSignal && runId && step.kind === "signal" && step.status === "WAITING" && step.signal && (
            <div className="px-3 pb-3 sm:pl-10">
              <SignalForm runId={runId} stepId={step.step_id} signal={step.signal} />
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}
