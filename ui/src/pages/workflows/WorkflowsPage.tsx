import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Plus } from "lucide-react";
import { Link } from "react-router";
import { api, unwrap } from "../../api/client";
import { useCan } from "../../auth/session";
import { ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select, TextInput } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { StatusBadge } from "../../components/StatusBadge";
import { SortableTh, Table, Td, Th } from "../../components/Table";
import { RelativeTime } from "../../components/Time";
import { queryOf, useSearchState } from "../../lib/useSearchState";

const DEFAULTS = { name: "", status: "", agent_name: "", sort: "name", order: "asc", page: "1", page_size: "20" };

export default function WorkflowsPage() {
  const [state, update] = useSearchState(DEFAULTS);
  const canManage = useCan("manage");
  const query = queryOf(state);
  const workflows = useQuery({
    queryKey: ["workflows", "list", query],
    queryFn: async () => unwrap(await api.GET("/api/v1/workflows", { params: { query: query as never } })),
    placeholderData: keepPreviousData,
  });
  const sort = (field: string, order: "asc" | "desc") => update({ sort: field, order });

  return (
    <div>
      <PageHeader
        title="Workflows"
        subtitle="Versioned step graphs whose steps call agents."
        actions={
          canManage && (
            <ButtonLink to="/workflows/new" variant="primary">
              <Plus aria-hidden="true" className="size-4" /> New workflow
            </ButtonLink>
          )
        }
      />
      <Card>
        <form role="search" aria-label="Filter workflows" className="mb-4 grid gap-3 sm:grid-cols-3" onSubmit={(e) => e.preventDefault()}>
          <Field label="Name contains">
            {(props) => (
              <TextInput {...props} type="search" defaultValue={state.name} onChange={(e) => update({ name: e.target.value })} />
            )}
          </Field>
          <Field label="Status">
            {(props) => (
              <Select {...props} value={state.status} onChange={(e) => update({ status: e.target.value })}>
                <option value="">Active and inactive</option>
                <option value="active">Active</option>
                <option value="inactive">Inactive</option>
                <option value="deleted">Deleted</option>
                <option value="all">All</option>
              </Select>
            )}
          </Field>
          <Field label="Calls agent">
            {(props) => (
              <TextInput {...props} defaultValue={state.agent_name} onBlur={(e) => update({ agent_name: e.target.value.trim() })} />
            )}
          </Field>
        </form>
        {workflows.isPending ? (
          <Loading what="Loading workflows" />
        ) : workflows.isError ? (
          <ErrorNotice error={workflows.error} />
        ) : workflows.data.items.length === 0 ? (
          <EmptyState>No workflow matches.</EmptyState>
        ) : (
          <>
            <Table caption="Workflows">
              <thead>
                <tr>
                  <SortableTh field="name" label="Name" sort={state.sort} order={state.order as "asc" | "desc"} onSort={sort} />
                  <Th>Status</Th>
                  <Th>Version</Th>
                  <Th className="hidden md:table-cell">Steps</Th>
                  <SortableTh field="updated_at" label="Updated" sort={state.sort} order={state.order as "asc" | "desc"} onSort={sort} />
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {workflows.data.items.map((w) => (
                  <tr key={w.id} className="hover:bg-slate-50">
                    <Td>
                      <Link to={`/workflows/${w.id}`} className="font-medium text-indigo-800 hover:underline">
                        {w.name}
                      </Link>
                      {w.description && <p className="max-w-md truncate text-xs text-slate-600">{w.description}</p>}
                    </Td>
                    <Td>
                      <StatusBadge status={w.status} />
                    </Td>
                    <Td>v{w.version}</Td>
                    <Td className="hidden md:table-cell">{Object.keys(w.steps ?? {}).length}</Td>
                    <Td className="whitespace-nowrap">
                      <RelativeTime at={w.updated_at} />
                    </Td>
                  </tr>
                ))}
              </tbody>
            </Table>
            <Pagination
              page={workflows.data.page}
              totalPages={workflows.data.total_pages}
              total={workflows.data.total}
              onPage={(page) => update({ page: String(page) })}
            />
          </>
        )}
      </Card>
    </div>
  );
}
