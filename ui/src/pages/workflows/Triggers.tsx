import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { CalendarClock, Pause, Play, Webhook } from "lucide-react";
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";
import { Button } from "../../components/Button";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { DateTime, RelativeTime } from "../../components/Time";

type Trigger = components["schemas"]["TriggerResponse"];

/** Shown of each trigger: its next fire times (schedules), where to call it (webhooks). */
function describe(trigger: Trigger): string {
  const config = trigger.config as Record<string, unknown>;
  if (trigger.type === "schedule") {
    const zone = typeof config.timezone === "string" ? ` (${config.timezone})` : "";
    if (typeof config.cron === "string") return `cron ${config.cron}${zone}`;
    if (typeof config.every === "number") return `every ${config.every} s`;
    return "schedule";
  }
  return `${trigger.method ?? "POST"} ${trigger.url_path ?? ""}`.trim();
}

/**
 * A workflow's triggers (ADR 0017): schedules with their next fire times, webhooks with their
 * path; the latest firing; Pause and Resume for roles that manage workflows.
 */
export function Triggers({ workflowId, canManage }: { workflowId: string; canManage: boolean }) {
  const queries = useQueryClient();
  const triggers = useQuery({
    queryKey: ["triggers", { workflow_id: workflowId }],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/triggers", { params: { query: { workflow_id: workflowId, page_size: 100 } } })),
    refetchInterval: 15_000,
  });
  const toggle = useMutation({
    mutationFn: async ({ id, to }: { id: string; to: "pause" | "resume" }) =>
      unwrap(
        to === "pause"
          ? await api.POST("/api/v1/triggers/{trigger_id}/pause", { params: { path: { trigger_id: id } } })
          : await api.POST("/api/v1/triggers/{trigger_id}/resume", { params: { path: { trigger_id: id } } }),
      ),
    onSuccess: () => queries.invalidateQueries({ queryKey: ["triggers"] }),
  });

  if (triggers.isPending) return <Loading what="Loading triggers" />;
  if (triggers.isError) return <ErrorNotice error={triggers.error} />;
  const shown = triggers.data.items.filter((t) => t.status !== "removed");
  if (shown.length === 0) return <EmptyState>No schedule or webhook starts this workflow.</EmptyState>;
  return (
    <div className="space-y-3">
      {toggle.isError && <ErrorNotice error={toggle.error} />}
      <ul aria-label="Triggers" className="divide-y divide-slate-200 rounded-md ring-1 ring-slate-200">
        {shown.map((trigger) => {
          const Icon = trigger.type === "schedule" ? CalendarClock : Webhook;
          const next = trigger.next_fire_times ?? [];
          return (
            <li key={trigger.id} data-trigger={trigger.key} className="space-y-1 px-3 py-2 text-sm">
              <div className="flex flex-wrap items-center gap-x-3 gap-y-1">
                <Icon aria-hidden="true" className="size-4 text-slate-600" />
                <span className="font-mono font-semibold text-slate-900">{trigger.key}</span>
                <StatusBadge status={trigger.status} />
                <span className="font-mono text-xs break-all text-slate-700">{describe(trigger)}</span>
                <span className="text-xs text-slate-700">
                  fired {trigger.fired_count} {trigger.fired_count === 1 ? "time" : "times"}
                  {trigger.last_fired_at && (
                    <>
                      , last <RelativeTime at={trigger.last_fired_at} />
                    </>
                  )}
                  {trigger.failed_count > 0 && `, ${trigger.failed_count} failed`}
                </span>
                {canManage && (trigger.status === "active" || trigger.status === "paused") && (
                  <Button
                    size="sm"
                    className="ml-auto"
                    busy={toggle.isPending && toggle.variables?.id === trigger.id}
                    onClick={() => toggle.mutate({ id: trigger.id, to: trigger.status === "active" ? "pause" : "resume" })}
                  >
                    {trigger.status === "active" ? (
                      <>
                        <Pause aria-hidden="true" className="size-3.5" /> Pause
                      </>
                    ) : (
                      <>
                        <Play aria-hidden="true" className="size-3.5" /> Resume
                      </>
                    )}
                  </Button>
                )}
              </div>
              {trigger.type === "schedule" && (
                <div className="pl-7 text-xs text-slate-700">
                  {next.length === 0 ? (
                    "No next fire time while it is paused or disabled."
                  ) : (
                    <>
                      Next:{" "}
                      <ol aria-label={`Next fire times of ${trigger.key}`} className="inline">
                        {next.slice(0, 3).map((at, index) => (
                          <li key={at} className="inline" data-next-fire={at}>
                            {index > 0 && ", "}
                            <DateTime at={at} />
                          </li>
                        ))}
                      </ol>
                    </>
                  )}
                </div>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
