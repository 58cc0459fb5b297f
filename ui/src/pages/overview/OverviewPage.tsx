import { useQueries, useQuery } from "@tanstack/react-query";
import { clsx } from "clsx";
import { Link } from "react-router";
import { api, unwrap } from "../../api/client";
import { Card, PageHeader } from "../../components/Card";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { RelativeTime } from "../../components/Time";
import { pollingInterval, useLiveRuns } from "../../live/useLiveRuns";
import { RUN_STATUSES, TONE_CLASSES, statusLook } from "../../status/statuses";
import { RunsTable, shortId } from "../runs/RunsTable";

async function runsPage(query: Record<string, string | number>) {
  return unwrap(await api.GET("/api/v1/runs", { params: { query: query as never } }));
}

/** Runs by status, the latest failures and the latest runs: where to look first. */
export default function OverviewPage() {
  const live = useLiveRuns();
  const REFRESH_MS = pollingInterval(live);
  const counts = useQueries({
    queries: RUN_STATUSES.map((status) => ({
      queryKey: ["runs", "list", { status, page_size: 1 }],
      queryFn: () => runsPage({ status, page_size: 1 }),
      refetchInterval: REFRESH_MS,
    })),
  });
  const failures = useQuery({
    queryKey: ["runs", "list", { status: "FAILED", page_size: 5 }],
    queryFn: () => runsPage({ status: "FAILED", page_size: 5 }),
    refetchInterval: REFRESH_MS,
  });
  const latest = useQuery({
    queryKey: ["runs", "list", { page_size: 8 }],
    queryFn: () => runsPage({ page_size: 8 }),
    refetchInterval: REFRESH_MS,
  });

  return (
    <div className="space-y-5">
      <PageHeader title="Overview" subtitle={live === "live" ? "Runs by status, live." : "Runs by status, refreshed every few seconds."} />
      <ul aria-label="Runs by status" className="grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-5">
        {RUN_STATUSES.map((status, index) => {
          const look = statusLook(status);
          const total = counts[index]?.data?.total;
          return (
            <li key={status}>
              <Link
                to={`/runs?status=${status}`}
                className="block rounded-lg bg-white p-4 shadow-sm ring-1 ring-slate-200 hover:ring-indigo-400"
              >
                <span className="flex items-center gap-2 text-sm font-medium text-slate-700">
                  <span aria-hidden="true" className={clsx("size-2.5 rounded-full", TONE_CLASSES[look.tone].dot)} />
                  {look.label}
                </span>
                <span className="mt-1 block text-3xl font-semibold text-slate-900" data-count={status}>
                  {total ?? "…"}
                </span>
              </Link>
            </li>
          );
        })}
      </ul>

      <div className="grid gap-5 xl:grid-cols-3">
        <Card title="Latest failures" className="xl:col-span-1">
          {failures.isPending ? (
            <Loading />
          ) : failures.isError ? (
            <ErrorNotice error={failures.error} />
          ) : failures.data.items.length === 0 ? (
            <EmptyState>No run has failed.</EmptyState>
          ) : (
            <ul className="divide-y divide-slate-100">
              {failures.data.items.map((run) => (
                <li key={run.id} className="py-2">
                  <Link to={`/runs/${run.id}`} className="block rounded hover:bg-slate-50">
                    <span className="flex items-center justify-between gap-2 text-sm">
                      <span className="font-medium text-slate-900">{run.workflow_name}</span>
                      <span className="text-xs text-slate-600">
                        <RelativeTime at={run.completed_at ?? run.created_at} />
                      </span>
                    </span>
                    <span className="block truncate text-xs text-red-800">
                      <span className="font-mono">{shortId(run.id)}</span>
                      {run.failed_step && <> · step {run.failed_step}</>} · {run.error_message}
                    </span>
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card
          title="Latest runs"
          className="xl:col-span-2"
          actions={
            <Link to="/runs" className="text-sm font-medium text-indigo-800 hover:underline">
              All runs
            </Link>
          }
        >
          {latest.isPending ? (
            <Loading />
          ) : latest.isError ? (
            <ErrorNotice error={latest.error} />
          ) : latest.data.items.length === 0 ? (
            <EmptyState>
              No run yet. <Link to="/workflows" className="underline">Run a workflow</Link>, or start{" "}
              <code>python -m examples.demo</code>.
            </EmptyState>
          ) : (
            <RunsTable runs={latest.data.items} caption="Latest runs" />
          )}
        </Card>
      </div>
    </div>
  );
}
