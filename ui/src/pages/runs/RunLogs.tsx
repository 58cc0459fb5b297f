import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { clsx } from "clsx";
import { useState } from "react";
import { api, unwrap } from "../../api/client";
import type { StepExecution } from "../../api/types";
import { Field, Select } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";

const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"] as const;
const LEVEL_CLASSES: Record<string, string> = {
  DEBUG: "text-slate-600",
  INFO: "text-sky-800",
  WARNING: "text-amber-800",
  ERROR: "text-red-800 font-semibold",
};

/** The run's log, filtered by level (that level and above, as the API does) and step. */
export function RunLogs({ runId, steps }: { runId: string; steps: StepExecution[] }) {
  const [level, setLevel] = useState("");
  const [stepId, setStepId] = useState("");
  const [page, setPage] = useState(1);
  const query = {
    ...(level ? { level: level as (typeof LEVELS)[number] } : {}),
    ...(stepId ? { step_id: stepId } : {}),
    page,
    page_size: 200,
  };
  const logs = useQuery({
    queryKey: ["runs", runId, "logs", query],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/runs/{run_id}/logs", { params: { path: { run_id: runId }, query } })),
    placeholderData: keepPreviousData,
  });

  return (
    <div>
      <div className="mb-3 grid max-w-md grid-cols-2 gap-3">
        <Field label="Level">
          {(props) => (
            <Select
              {...props}
              value={level}
              onChange={(e) => {
                setLevel(e.target.value);
                setPage(1);
              }}
            >
              <option value="">All</option>
              {LEVELS.map((l) => (
                <option key={l} value={l}>
                  {l} and above
                </option>
              ))}
            </Select>
          )}
        </Field>
        <Field label="Step">
          {(props) => (
            <Select
              {...props}
              value={stepId}
              onChange={(e) => {
                setStepId(e.target.value);
                setPage(1);
              }}
            >
              <option value="">All steps</option>
              {steps.map((s) => (
                <option key={s.step_id} value={s.step_id}>
                  {s.step_id}
                </option>
              ))}
            </Select>
          )}
        </Field>
      </div>
      {logs.isPending ? (
        <Loading what="Loading the log" />
      ) : logs.isError ? (
        <ErrorNotice error={logs.error} />
      ) : logs.data.items.length === 0 ? (
        <EmptyState>No log line matches.</EmptyState>
      ) : (
        <>
          <ol aria-label="Log lines" className="divide-y divide-slate-100 rounded-md font-mono text-xs ring-1 ring-slate-200">
            {logs.data.items.map((line) => (
              <li key={line.id} className="grid grid-cols-[auto_auto_1fr] gap-x-3 px-3 py-1.5 sm:grid-cols-[auto_4.5rem_6rem_1fr]">
                <time dateTime={line.timestamp} className="text-slate-600">
                  {new Date(line.timestamp).toLocaleTimeString()}
                </time>
                <span className={clsx(LEVEL_CLASSES[line.level] ?? "text-slate-800")}>{line.level}</span>
                <span className="hidden truncate text-slate-700 sm:block">{line.step_id ?? "run"}</span>
                <span className="break-words text-slate-900">{line.message}</span>
              </li>
            ))}
          </ol>
          <Pagination page={logs.data.page} totalPages={logs.data.total_pages} total={logs.data.total} onPage={setPage} />
        </>
      )}
    </div>
  );
}
