import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { HeartPulse } from "lucide-react";
import { api, unwrap } from "../../api/client";
import type { Agent } from "../../api/types";
import { Button } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select, TextInput } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { StatusBadge } from "../../components/StatusBadge";
import { Table, Td, Th } from "../../components/Table";
import { formatDuration } from "../../components/Time";
import { queryOf, useSearchState } from "../../lib/useSearchState";

/** An agent's health: its A2A card fetched now (reachable, latency, the card's name). */
function Health({ agent }: { agent: Agent }) {
  const health = useQuery({
    queryKey: ["agents", agent.id, "health"],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/agents/{agent_id}/health", { params: { path: { agent_id: agent.id } } })),
    enabled: agent.status === "active",
    staleTime: 15_000,
  });
  if (agent.status !== "active") return <span className="text-xs text-slate-600">not checked</span>;
  if (health.isPending) return <span className="text-xs text-slate-600">checking…</span>;
  if (health.isError) return <span className="text-xs text-red-800">{String(health.error.message)}</span>;
  const h = health.data;
  return (
    <span className="flex flex-wrap items-center gap-2 text-xs">
      <StatusBadge status={h.reachable ? "reachable" : "unreachable"} />
      {h.reachable ? (
        <span className="text-slate-700">
          {h.card_name ?? "card"} {h.card_version && `v${h.card_version}`} · {formatDuration(h.latency_ms)}
        </span>
      ) : (
        <span className="text-red-800">{h.error}</span>
      )}
      <Button size="sm" variant="ghost" onClick={() => void health.refetch()} aria-label={`Check ${agent.name} again`}>
        <HeartPulse aria-hidden="true" className="size-3.5" /> Check
      </Button>
    </span>
  );
}

const DEFAULTS = { name: "", status: "", page: "1", page_size: "20" };

export default function AgentsPage() {
  const [state, update] = useSearchState(DEFAULTS);
  const query = queryOf(state);
  const agents = useQuery({
    queryKey: ["agents", "list", query],
    queryFn: async () => unwrap(await api.GET("/api/v1/agents", { params: { query: query as never } })),
    placeholderData: keepPreviousData,
  });
  return (
    <div>
      <PageHeader title="Agents" subtitle="The A2A services that steps call, and whether their card answers now." />
      <Card>
        <form role="search" aria-label="Filter agents" className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-3" onSubmit={(e) => e.preventDefault()}>
          <Field label="Name contains">
            {(props) => <TextInput {...props} type="search" defaultValue={state.name} onChange={(e) => update({ name: e.target.value })} />}
          </Field>
          <Field label="Status">
            {(props) => (
              <Select {...props} value={state.status} onChange={(e) => update({ status: e.target.value })}>
                <option value="">Active and inactive</option>
                <option value="active">Active</option>
                <option value="inactive">Inactive</option>
                <option value="deleted">Deleted</option>
              </Select>
            )}
          </Field>
        </form>
        {agents.isPending ? (
          <Loading what="Loading agents" />
        ) : agents.isError ? (
          <ErrorNotice error={agents.error} />
        ) : agents.data.items.length === 0 ? (
          <EmptyState>No agent is registered. <code>python -m examples.demo</code> registers four.</EmptyState>
        ) : (
          <>
            <Table caption="Agents">
              <thead>
                <tr>
                  <Th>Name</Th>
                  <Th>Status</Th>
                  <Th>Health</Th>
                  <Th className="hidden lg:table-cell">URL</Th>
                  <Th className="hidden md:table-cell">Timeout, retries</Th>
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {agents.data.items.map((agent) => (
                  <tr key={agent.id}>
                    <Td>
                      <span className="font-medium text-slate-900">{agent.name}</span>
                      {agent.description && <p className="text-xs text-slate-600">{agent.description}</p>}
                    </Td>
                    <Td><StatusBadge status={agent.status} /></Td>
                    <Td><Health agent={agent} /></Td>
                    <Td className="hidden font-mono text-xs break-all lg:table-cell">{agent.url}</Td>
                    <Td className="hidden text-xs md:table-cell">
                      {formatDuration(agent.timeout_ms)}, {agent.retry_config.max_retries} retries
                    </Td>
                  </tr>
                ))}
              </tbody>
            </Table>
            <Pagination page={agents.data.page} totalPages={agents.data.total_pages} total={agents.data.total} onPage={(p) => update({ page: String(p) })} />
          </>
        )}
      </Card>
    </div>
  );
}
