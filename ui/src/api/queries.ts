/** Query hooks shared by several pages (keys: ``["runs", id, ...]``, ``["workflows", id, ...]``). */
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./client";

export function useRun(runId: string) {
  return useQuery({
    queryKey: ["runs", runId],
    queryFn: async () => unwrap(await api.GET("/api/v1/runs/{run_id}", { params: { path: { run_id: runId } } })),
  });
}

export function useRunSteps(runId: string) {
  return useQuery({
    queryKey: ["runs", runId, "steps"],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/runs/{run_id}/steps", { params: { path: { run_id: runId } } })),
  });
}

export function useWorkflow(workflowId: string) {
  return useQuery({
    queryKey: ["workflows", workflowId],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/workflows/{workflow_id}", { params: { path: { workflow_id: workflowId } } }),
      ),
  });
}

/** Every workflow's name (filters, links): up to 100, by name. */
export function useWorkflowNames() {
  return useQuery({
    queryKey: ["workflows", "names"],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/workflows", {
          params: { query: { page_size: 100, sort: "name", order: "asc", status: "all" } },
        }),
      ).items,
    staleTime: 30_000,
  });
}
