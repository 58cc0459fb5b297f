import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../../api/client";
import { useWorkflowNames } from "../../api/queries";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select, TextInput } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { queryOf, useSearchState } from "../../lib/useSearchState";
import { pollingInterval, useLiveRuns } from "../../live/useLiveRuns";
import { RUN_STATUSES, statusLook } from "../../status/statuses";
import { RunsTable } from "./RunsTable";

const DEFAULTS = {
  status: "",
  workflow_id: "",
  triggered_by: "",
  created_from: "",
  created_to: "",
  sort: "created_at",
  order: "desc",
  page: "1",
  page_size: "20",
};

/** ``datetime-local`` gives local time without a zone; the API wants ISO 8601. */
function toIso(local: string): string {
  return local ? new Date(local).toISOString() : "";
}

export default function RunsPage() {
  const [state, update] = useSearchState(DEFAULTS);
  const live = useLiveRuns();
  const workflows = useWorkflowNames();
  const query = queryOf({ ...state, created_from: toIso(state.created_from), created_to: toIso(state.created_to) });
  const runs = useQuery({
    queryKey: ["runs", "list", query],
    queryFn: async () => unwrap(await api.GET("/api/v1/runs", { params: { query: query as never } })),
    placeholderData: keepPreviousData,
    refetchInterval: pollingInterval(live),
  });

  return (
    <div>
      <PageHeader title="Runs" subtitle={live === "live" ? "Every run of every workflow, live." : "Every run of every workflow; refreshed every few seconds."} />
      <Card>
        <form
          role="search"
          aria-label="Filter runs"
          className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-5"
          onSubmit={(e) => e.preventDefault()}
        >
          <Field label="Status">
            {(props) => (
              <Select {...props} value={state.status} onChange={(e) => update({ status: e.target.value })}>
                <option value="">Any</option>
                {RUN_STATUSES.map((s) => (
                  <option key={s} value={s}>
                    {statusLook(s).label}
                  </option>
                ))}
              </Select>
            )}
          </Field>
          <Field label="Workflow">
            {(props) => (
              <Select {...props} value={state.workflow_id} onChange={(e) => update({ workflow_id: e.target.value })}>
                <option value="">Any</option>
                {(workflows.data ?? []).map((w) => (
                  <option key={w.id} value={w.id}>
                    {w.name}
                  </option>
                ))}
              </Select>
            )}
          </Field>
          <Field label="Triggered by">
            {(props) => (
              <TextInput
                {...props}
                placeholder="key:…, admin-env"
                defaultValue={state.triggered_by}
                onBlur={(e) => update({ triggered_by: e.target.value.trim() })}
                onKeyDown={(e) => e.key === "Enter" && update({ triggered_by: e.currentTarget.value.trim() })}
              />
            )}
          </Field>
          <Field label="Created from">
            {(props) => (
              <TextInput
                {...props}
                type="datetime-local"
                value={state.created_from}
                onChange={(e) => update({ created_from: e.target.value })}
              />
            )}
          </Field>
          <Field label="Created before">
            {(props) => (
              <TextInput
                {...props}
                type="datetime-local"
                value={state.created_to}
                onChange={(e) => update({ created_to: e.target.value })}
              />
            )}
          </Field>
        </form>
        {runs.isPending ? (
          <Loading what="Loading runs" />
        ) : runs.isError ? (
          <ErrorNotice error={runs.error} />
        ) : runs.data.items.length === 0 ? (
          <EmptyState>No run matches these filters.</EmptyState>
        ) : (
          <>
            <RunsTable
              runs={runs.data.items}
              sort={state.sort}
              order={state.order as "asc" | "desc"}
              onSort={(sort, order) => update({ sort, order })}
            />
            <Pagination
              page={runs.data.page}
              totalPages={runs.data.total_pages}
              total={runs.data.total}
              onPage={(page) => update({ page: String(page) })}
            />
          </>
        )}
      </Card>
    </div>
  );
}
