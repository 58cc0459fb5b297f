import { Link } from "react-router";
import type { Run } from "../../api/types";
import { StatusBadge } from "../../components/StatusBadge";
import { SortableTh, Table, Td, Th } from "../../components/Table";
import { RelativeTime, formatDuration } from "../../components/Time";

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function RunsTable({
  runs,
  sort,
  order,
  onSort,
  caption = "Runs",
}: {
  runs: Run[];
  sort?: string;
  order?: "asc" | "desc";
  onSort?: (field: string, order: "asc" | "desc") => void;
  caption?: string;
}) {
  const header = (field: string, label: string) =>
    onSort && sort && order ? (
      <SortableTh field={field} label={label} sort={sort} order={order} onSort={onSort} />
    ) : (
      <Th>{label}</Th>
    );
  return (
    <Table caption={caption}>
      <thead>
        <tr>
          <Th>Run</Th>
          {header("workflow_name", "Workflow")}
          {header("status", "Status")}
          {header("created_at", "Created")}
          {header("duration_ms", "Duration")}
          <Th className="hidden md:table-cell">Triggered by</Th>
        </tr>
      </thead>
      <tbody className="divide-y divide-slate-100">
        {runs.map((run) => (
          <tr key={run.id} className="hover:bg-slate-50">
            <Td>
              <Link to={`/runs/${run.id}`} className="font-mono font-medium text-indigo-800 underline-offset-2 hover:underline">
                {shortId(run.id)}
              </Link>
            </Td>
            <Td className="whitespace-nowrap">
              <Link to={`/workflows/${run.workflow_id}`} className="text-slate-900 hover:underline">
                {run.workflow_name}
              </Link>
              <span className="ml-1 text-xs text-slate-600">v{run.workflow_version}</span>
            </Td>
            <Td>
              <StatusBadge status={run.status} />
              {run.failed_step && <span className="ml-2 font-mono text-xs text-red-800">{run.failed_step}</span>}
            </Td>
            <Td className="whitespace-nowrap">
              <RelativeTime at={run.created_at} />
            </Td>
            <Td className="whitespace-nowrap">{formatDuration(run.duration_ms)}</Td>
            <Td className="hidden max-w-48 truncate font-mono text-xs text-slate-700 md:table-cell">{run.triggered_by}</Td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}
