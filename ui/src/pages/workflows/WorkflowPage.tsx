import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { FlaskConical, Pencil, Play } from "lucide-react";
import { useMemo, useState } from "react";
import { useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { useWorkflow } from "../../api/queries";
import type { WorkflowVersion } from "../../api/types";
import { useCan } from "../../auth/session";
import { Button, ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select } from "../../components/Field";
import { JsonBlock } from "../../components/JsonBlock";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { Tabs } from "../../components/Tabs";
import { RelativeTime } from "../../components/Time";
import { StepGraph } from "../../graph/StepGraph";
import { stepsOfDefinition } from "../../graph/stepGraph";
import { RunsTable } from "../runs/RunsTable";
import { Triggers } from "./Triggers";
import { VersionDiff } from "./VersionDiff";

function changeSummary(version: WorkflowVersion): string {
  const c = version.changes;
  if (!c) return "first version";
  const parts = [
    c.steps_added.length ? `added ${c.steps_added.join(", ")}` : "",
    c.steps_removed.length ? `removed ${c.steps_removed.join(", ")}` : "",
    Object.keys(c.steps_changed).length ? `changed ${Object.keys(c.steps_changed).join(", ")}` : "",
    c.fields_changed.length ? `changed ${c.fields_changed.join(", ")}` : "",
  ].filter(Boolean);
  return parts.join("; ") || "no change to the steps";
}

function Versions({ workflowId, current }: { workflowId: string; current: number }) {
  const versions = useQuery({
    queryKey: ["workflows", workflowId, "versions"],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/workflows/{workflow_id}/versions", {
          params: { path: { workflow_id: workflowId }, query: { page_size: 100 } },
        }),
      ).items,
  });
  const [from, setFrom] = useState(String(Math.max(1, current - 1)));
  const [to, setTo] = useState(String(current));
  const byNumber = useMemo(() => new Map((versions.data ?? []).map((v) => [String(v.version), v])), [versions.data]);

  if (versions.isPending) return <Loading what="Loading versions" />;
  if (versions.isError) return <ErrorNotice error={versions.error} />;
  const left = byNumber.get(from);
  const right = byNumber.get(to);
  return (
    <div className="space-y-4">
      <ol className="divide-y divide-slate-100 text-sm">
        {[...versions.data].reverse().map((v) => (
          <li key={v.version} className="flex flex-wrap items-baseline gap-x-3 py-1.5">
            <span className="font-semibold">v{v.version}</span>
            <span className="text-slate-700">{changeSummary(v)}</span>
            <span className="text-xs text-slate-600">
              <RelativeTime at={v.created_at} /> {v.created_by && <>by <span className="font-mono">{v.created_by}</span></>}
            </span>
          </li>
        ))}
      </ol>
      {versions.data.length > 1 && (
        <div className="space-y-3">
          <div className="grid max-w-md grid-cols-2 gap-3">
            <Field label="Compare version">
              {(props) => (
                <Select {...props} value={from} onChange={(e) => setFrom(e.target.value)}>
                  {versions.data.map((v) => (
                    <option key={v.version} value={v.version}>v{v.version}</option>
                  ))}
                </Select>
              )}
            </Field>
            <Field label="with version">
              {(props) => (
                <Select {...props} value={to} onChange={(e) => setTo(e.target.value)}>
                  {versions.data.map((v) => (
                    <option key={v.version} value={v.version}>v{v.version}</option>
                  ))}
                </Select>
              )}
            </Field>
          </div>
          {left && right && <VersionDiff from={left} to={right} />}
        </div>
      )}
    </div>
  );
}

function RecentRuns({ workflowId }: { workflowId: string }) {
  const runs = useQuery({
    queryKey: ["runs", "list", { workflow_id: workflowId, page_size: 10 }],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/runs", { params: { query: { workflow_id: workflowId, page_size: 10 } } })),
    refetchInterval: 5_000,
  });
  if (runs.isPending) return <Loading what="Loading runs" />;
  if (runs.isError) return <ErrorNotice error={runs.error} />;
  if (runs.data.items.length === 0) return <EmptyState>This workflow has not run yet.</EmptyState>;
  return <RunsTable runs={runs.data.items} caption="Latest runs of this workflow" />;
}

export default function WorkflowPage() {
  const { workflowId = "" } = useParams();
  const workflow = useWorkflow(workflowId);
  const canExecute = useCan("execute");
  const canManage = useCan("manage");
  const queries = useQueryClient();
  const setStatus = useMutation({
    mutationFn: async (status: "active" | "inactive") =>
      unwrap(
        await api.PUT("/api/v1/workflows/{workflow_id}", {
          params: { path: { workflow_id: workflowId } },
          body: { status } as never,
        }),
      ),
    onSuccess: () => queries.invalidateQueries({ queryKey: ["workflows"] }),
  });
  const steps = useMemo(() => stepsOfDefinition(workflow.data?.steps), [workflow.data?.steps]);

  if (workflow.isPending) return <Loading what="Loading the workflow" />;
  if (workflow.isError) return <ErrorNotice error={workflow.error} />;
  const w = workflow.data;
  const usable = w.status === "active";

  return (
    <div className="space-y-5">
      <PageHeader
        title={
          <span className="flex flex-wrap items-center gap-3">
            {w.name} <StatusBadge status={w.status} className="text-sm" />
          </span>
        }
        subtitle={
          <>
            Version {w.version} · updated <RelativeTime at={w.updated_at} />
            {w.owner && <> · owner <span className="font-mono">{w.owner}</span></>}
            {w.description && <p className="mt-1">{w.description}</p>}
          </>
        }
        actions={
          <>
            {canExecute && usable && (
              <ButtonLink to={`/workflows/${w.id}/execute`} variant="primary">
                <Play aria-hidden="true" className="size-4" /> Run
              </ButtonLink>
            )}
            {canExecute && (
              <ButtonLink to={`/workflows/${w.id}/test`}>
                <FlaskConical aria-hidden="true" className="size-4" /> Dry run
              </ButtonLink>
            )}
            {canManage && w.status !== "deleted" && (
              <>
                <ButtonLink to={`/workflows/${w.id}/edit`}>
                  <Pencil aria-hidden="true" className="size-4" /> Edit
                </ButtonLink>
                <Button
                  variant="ghost"
                  busy={setStatus.isPending}
                  onClick={() => setStatus.mutate(usable ? "inactive" : "active")}
                >
                  {usable ? "Deactivate" : "Activate"}
                </Button>
              </>
            )}
          </>
        }
      />
      {setStatus.isError && <ErrorNotice error={setStatus.error} />}
      <Card title="Graph">
        <StepGraph steps={steps} label={`Steps of ${w.name}, version ${w.version}`} />
      </Card>
      <Card>
        <Tabs
          label="Workflow details"
          tabs={[
            { id: "runs", label: "Runs", content: <RecentRuns workflowId={w.id} /> },
            { id: "triggers", label: "Triggers", content: <Triggers workflowId={w.id} canManage={canManage} /> },
            { id: "versions", label: "Versions", content: <Versions workflowId={w.id} current={w.version} /> },
            {
              id: "definition",
              label: "Definition",
              content: (
                <div className="grid gap-4 lg:grid-cols-2">
                  <div>
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Steps</h3>
                    <JsonBlock value={w.steps} label="Steps" />
                  </div>
                  <div className="space-y-3">
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Input schema</h3>
                    <JsonBlock value={w.input_schema} label="Input schema" />
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Variables</h3>
                    <JsonBlock value={w.variables} label="Variables" />
                    <h3 className="mb-1 text-xs font-semibold text-slate-700 uppercase">Triggers</h3>
                    <JsonBlock value={w.triggers} label="Triggers" />
                  </div>
                </div>
              ),
            },
          ]}
        />
      </Card>
    </div>
  );
}
