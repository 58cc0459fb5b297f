import { useQuery } from "@tanstack/react-query";
import {
  BarElement,
  CategoryScale,
  Chart as ChartJS,
  type ChartOptions,
  Legend,
  LinearScale,
  Tooltip,
} from "chart.js";
import { useMemo } from "react";
import { Bar as BarChart } from "react-chartjs-2";
import { Link } from "react-router";
import { api, unwrap } from "../../api/client";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Table, Td, Th } from "../../components/Table";
import { formatDuration } from "../../components/Time";
import { useSearchState } from "../../lib/useSearchState";
import { RANGES, percent, rangeOf, rangeQuery, statusDatasets } from "./analytics";

ChartJS.register(BarElement, CategoryScale, LinearScale, Tooltip, Legend);

const DEFAULTS = { range: "7d" };

function Figure({ label, value }: { label: string; value: string }) {
  return (
    <div className="rounded-lg bg-white p-4 ring-1 ring-slate-200" data-figure={label}>
      <dt className="text-xs font-semibold tracking-wide text-slate-600 uppercase">{label}</dt>
      <dd className="mt-1 text-2xl font-semibold text-slate-900">{value}</dd>
    </div>
  );
}

function bucketLabel(start: string, bucket: string): string {
  const date = new Date(start);
  return bucket === "hour"
    ? date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** Runs over time by status, success rate and durations, the busiest workflows, the agents. */
export default function AnalyticsPage() {
  const [search, setSearch] = useSearchState(DEFAULTS);
  const choice = rangeOf(search.range);
  const query = useMemo(() => rangeQuery(choice), [choice]);
  const runs = useQuery({
    queryKey: ["analytics", "runs", choice.id],
    queryFn: async () => unwrap(await api.GET("/api/v1/analytics/runs", { params: { query } })),
    refetchInterval: 60_000,
  });
  const agents = useQuery({
    queryKey: ["analytics", "agents", choice.id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/analytics/agents", { params: { query: { created_from: query.created_from } } })),
    refetchInterval: 60_000,
  });

  const chart = useMemo(() => {
    const series = runs.data?.series ?? [];
    return {
      labels: series.map((p) => bucketLabel(p.start, runs.data?.bucket ?? choice.bucket)),
      datasets: statusDatasets(series),
    };
  }, [runs.data, choice.bucket]);
  const options: ChartOptions<"bar"> = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
    plugins: { legend: { position: "bottom" } },
  };

  return (
    <div className="space-y-5">
      <PageHeader
        title="Analytics"
        subtitle="Runs created in the range: by status over time, how many succeed, how long they take."
        actions={
          <Field label="Range" className="w-44">
            {(props) => (
              <Select {...props} value={choice.id} onChange={(e) => setSearch({ range: e.target.value })}>
                {RANGES.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.label}
                  </option>
                ))}
              </Select>
            )}
          </Field>
        }
      />
      {runs.isPending ? (
        <Loading what="Loading the figures" />
      ) : runs.isError ? (
        <ErrorNotice error={runs.error} />
      ) : (
        <>
          <dl className="grid grid-cols-2 gap-3 md:grid-cols-5">
            <Figure label="Runs" value={String(runs.data.totals.runs)} />
            <Figure label="Success rate" value={percent(runs.data.totals.success_rate)} />
            <Figure label="p50 duration" value={formatDuration(runs.data.totals.duration.p50_ms)} />
            <Figure label="p95 duration" value={formatDuration(runs.data.totals.duration.p95_ms)} />
            <Figure label="p99 duration" value={formatDuration(runs.data.totals.duration.p99_ms)} />
          </dl>
          <Card title="Runs by status">
            {runs.data.totals.runs === 0 ? (
              <EmptyState>No runs were created in this range.</EmptyState>
            ) : (
              <>
                <div className="h-72" aria-hidden="true">
                  <BarChart data={chart} options={options} />
                </div>
                <div className="sr-only">
                <Table caption="Runs by status in each bucket">
                  <thead>
                    <tr>
                      <Th>From</Th>
                      <Th>Runs</Th>
                      {chart.datasets.map((d) => (
                        <Th key={d.status}>{d.label}</Th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {runs.data.series.map((point, index) => (
                      <tr key={point.start}>
                        <Td>{chart.labels[index]}</Td>
                        <Td>{point.runs}</Td>
                        {chart.datasets.map((d) => (
                          <Td key={d.status}>{d.data[index]}</Td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </Table>
                </div>
              </>
            )}
          </Card>
          <Card title="Busiest workflows">
            {runs.data.busiest_workflows.length === 0 ? (
              <EmptyState>No workflow ran in this range.</EmptyState>
            ) : (
              <Table caption="The busiest workflows">
                <thead>
                  <tr>
                    <Th>Workflow</Th>
                    <Th>Runs</Th>
                    <Th>Success rate</Th>
                    <Th>p50</Th>
                    <Th>p95</Th>
                  </tr>
                </thead>
                <tbody className="divide-y divide-slate-100">
                  {runs.data.busiest_workflows.map((w) => (
                    <tr key={w.workflow_id} data-workflow={w.workflow_name ?? w.workflow_id}>
                      <Td>
                        <Link className="font-medium text-indigo-800 hover:underline" to={`/workflows/${w.workflow_id}`}>
                          {w.workflow_name ?? w.workflow_id}
                        </Link>
                      </Td>
                      <Td>{w.runs}</Td>
                      <Td>{percent(w.success_rate)}</Td>
                      <Td>{formatDuration(w.duration.p50_ms)}</Td>
                      <Td>{formatDuration(w.duration.p95_ms)}</Td>
                    </tr>
                  ))}
                </tbody>
              </Table>
            )}
          </Card>
        </>
      )}
      <Card title="Agents">
        {agents.isPending ? (
          <Loading />
        ) : agents.isError ? (
          <ErrorNotice error={agents.error} />
        ) : agents.data.agents.length === 0 ? (
          <EmptyState>No agent was called in this range.</EmptyState>
        ) : (
          <Table caption="Agents called in the range">
            <thead>
              <tr>
                <Th>Agent</Th>
                <Th>Steps</Th>
                <Th>Failed steps</Th>
                <Th>Attempts</Th>
                <Th>Retries</Th>
                <Th>p95</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {agents.data.agents.map((a) => (
                <tr key={a.agent_name} data-agent={a.agent_name}>
                  <Td className="font-mono">{a.agent_name}</Td>
                  <Td>{a.steps}</Td>
                  <Td>{a.failed_steps}</Td>
                  <Td>{a.attempts}</Td>
                  <Td>{a.retries}</Td>
                  <Td>{formatDuration(a.duration.p95_ms)}</Td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
    </div>
  );
}
