import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { StatusBadge } from "../../components/StatusBadge";
import { RelativeTime, formatDuration } from "../../components/Time";

export default function WebhookPage() {
  const { webhookId = "" } = useParams();
  const [page, setPage] = useState(1);
  const hook = useQuery({
    queryKey: ["webhooks", webhookId],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: webhookId } } })),
  });
  const deliveries = useQuery({
    queryKey: ["webhooks", webhookId, "deliveries", page],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/webhooks/{webhook_id}/deliveries", {
          params: { path: { webhook_id: webhookId }, query: { page, page_size: 20 } },
        }),
      ),
    placeholderData: keepPreviousData,
    refetchInterval: 5_000,
  });
  if (hook.isPending) return <Loading what="Loading the webhook" />;
  if (hook.isError) return <ErrorNotice error={hook.error} />;
  return (
    <div className="space-y-4">
      <PageHeader
        title={<span className="font-mono text-lg break-all">{hook.data.url}</span>}
        subtitle={hook.data.event_types.length ? hook.data.event_types.join(", ") : "every event"}
        actions={<ButtonLink to="/webhooks" variant="ghost">Back</ButtonLink>}
      />
      <Card title="Deliveries">
        {deliveries.isPending ? (
          <Loading what="Loading deliveries" />
        ) : deliveries.isError ? (
          <ErrorNotice error={deliveries.error} />
        ) : deliveries.data.items.length === 0 ? (
          <EmptyState>Nothing delivered yet.</EmptyState>
        ) : (
          <>
            <ul className="divide-y divide-slate-200 rounded-md ring-1 ring-slate-200">
              {deliveries.data.items.map((d) => (
                <li key={d.id}>
                  <details>
                    <summary className="flex cursor-pointer flex-wrap items-center gap-3 px-3 py-2 text-sm hover:bg-slate-50">
                      <span className="font-medium">{d.event_type}</span>
                      <StatusBadge status={d.status} />
                      <span className="text-xs text-slate-700">
                        {d.attempt_count} {d.attempt_count === 1 ? "attempt" : "attempts"}
                        {d.last_status_code !== null && `, last answer ${d.last_status_code}`}
                      </span>
                      <span className="ml-auto text-xs text-slate-600"><RelativeTime at={d.created_at} /></span>
                    </summary>
                    <ol className="space-y-1 px-3 pb-3 text-xs sm:pl-8">
                      {d.attempts.map((a) => (
                        <li key={a.attempt} className="flex flex-wrap gap-2">
                          <span>Attempt {a.attempt}</span>
                          <StatusBadge status={a.succeeded ? "succeeded" : "failed"} />
                          <span>{a.status_code ?? "no answer"}</span>
                          <span>{formatDuration(a.duration_ms)}</span>
                          {a.error && <span className="text-red-800">{a.error}</span>}
                        </li>
                      ))}
                      {d.last_error && <li className="text-red-800">{d.last_error}</li>}
                    </ol>
                  </details>
                </li>
              ))}
            </ul>
            <Pagination page={deliveries.data.page} totalPages={deliveries.data.total_pages} total={deliveries.data.total} onPage={setPage} />
          </>
        )}
      </Card>
    </div>
  );
}
