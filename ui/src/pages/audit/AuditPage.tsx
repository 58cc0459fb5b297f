import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../../api/client";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select, TextInput } from "../../components/Field";
import { JsonBlock } from "../../components/JsonBlock";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { DateTime } from "../../components/Time";
import { queryOf, useSearchState } from "../../lib/useSearchState";

const DEFAULTS = {
  actor: "",
  action: "",
  entity_type: "",
  entity_id: "",
  correlation_id: "",
  since: "",
  until: "",
  order: "desc",
  page: "1",
  page_size: "50",
};
const TEXT_FILTERS = [
  ["actor", "Actor", "key:…, jwt:…, admin-env"],
  ["action", "Action", "create, update, delete…"],
  ["entity_type", "Entity type", "agent, workflow, run…"],
  ["entity_id", "Entity id", "a UUID"],
  ["correlation_id", "Correlation id", "one request's changes"],
] as const;

function toIso(local: string): string {
  return local ? new Date(local).toISOString() : "";
}

/** Who changed what, and when: the audit log with its filters (admin). */
export default function AuditPage() {
  const [state, update] = useSearchState(DEFAULTS);
  const query = queryOf({ ...state, since: toIso(state.since), until: toIso(state.until) });
  const entries = useQuery({
    queryKey: ["audit", query],
    queryFn: async () => unwrap(await api.GET("/api/v1/audit", { params: { query: query as never } })),
    placeholderData: keepPreviousData,
  });
  return (
    <div>
      <PageHeader title="Audit log" subtitle="Every change, who made it and when; derived from the event store." />
      <Card>
        <form role="search" aria-label="Filter the audit log" className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-4" onSubmit={(e) => e.preventDefault()}>
          {TEXT_FILTERS.map(([key, label, placeholder]) => (
            <Field key={key} label={label}>
              {(props) => (
                <TextInput
                  {...props}
                  placeholder={placeholder}
                  defaultValue={state[key]}
                  onBlur={(e) => update({ [key]: e.target.value.trim() })}
                  onKeyDown={(e) => e.key === "Enter" && update({ [key]: e.currentTarget.value.trim() })}
                />
              )}
            </Field>
          ))}
          <Field label="Since">
            {(props) => <TextInput {...props} type="datetime-local" value={state.since} onChange={(e) => update({ since: e.target.value })} />}
          </Field>
          <Field label="Until">
            {(props) => <TextInput {...props} type="datetime-local" value={state.until} onChange={(e) => update({ until: e.target.value })} />}
          </Field>
          <Field label="Order">
            {(props) => (
              <Select {...props} value={state.order} onChange={(e) => update({ order: e.target.value })}>
                <option value="desc">Newest first</option>
                <option value="asc">Oldest first</option>
              </Select>
            )}
          </Field>
        </form>
        {entries.isPending ? (
          <Loading what="Loading the audit log" />
        ) : entries.isError ? (
          <ErrorNotice error={entries.error} />
        ) : entries.data.items.length === 0 ? (
          <EmptyState>No change matches these filters.</EmptyState>
        ) : (
          <>
            <ul aria-label="Changes" className="divide-y divide-slate-200 rounded-md ring-1 ring-slate-200">
              {entries.data.items.map((entry) => (
                <li key={entry.position}>
                  <details>
                    <summary className="grid cursor-pointer gap-x-3 px-3 py-2 text-sm hover:bg-slate-50 sm:grid-cols-[10rem_6rem_1fr_auto]">
                      <span className="text-xs text-slate-700"><DateTime at={entry.occurred_at} /></span>
                      <span className="font-medium">{entry.action}</span>
                      <span className="truncate">
                        {entry.entity_type} <span className="font-mono text-xs text-slate-700">{entry.entity_id}</span>
                      </span>
                      <span className="truncate font-mono text-xs text-slate-700">{entry.actor}</span>
                    </summary>
                    <div className="space-y-2 px-3 pb-3 text-xs">
                      <p>
                        {entry.event_type}, version {entry.entity_version}, position {entry.position}
                        {entry.correlation_id && (
                          <>
                            , request{" "}
                            <button type="button" className="font-mono underline" onClick={() => update({ correlation_id: entry.correlation_id ?? "" })}>
                              {entry.correlation_id}
                            </button>
                          </>
                        )}
                      </p>
                      <JsonBlock value={entry.changes} label={`Changes at position ${entry.position}`} />
                    </div>
                  </details>
                </li>
              ))}
            </ul>
            <Pagination page={entries.data.page} totalPages={entries.data.total_pages} total={entries.data.total} onPage={(p) => update({ page: String(p) })} />
          </>
        )}
      </Card>
    </div>
  );
}
