/**
 * The dashboard's routes (under ``/ui``). Spec 003 names ``/dashboard``, ``/workflows``,
 * ``/workflows/:id/execute``, ``/api-keys``, ``/logs``, ``/analytics`` and ``/settings``;
 * ``/integrations`` comes with the API that serves it. Each page is its own chunk.
 */
import { lazy } from "react";
import { Navigate, type RouteObject } from "react-router";
import { RequireSignIn } from "./auth/RequireSignIn";
import { AppShell } from "./layout/AppShell";
import NotFoundPage from "./pages/NotFoundPage";
import SignInPage from "./pages/sign-in/SignInPage";

const OverviewPage = lazy(() => import("./pages/overview/OverviewPage"));
const RunsPage = lazy(() => import("./pages/runs/RunsPage"));
const RunPage = lazy(() => import("./pages/runs/RunPage"));
const WorkflowsPage = lazy(() => import("./pages/workflows/WorkflowsPage"));
const WorkflowPage = lazy(() => import("./pages/workflows/WorkflowPage"));
const WorkflowEditorPage = lazy(() => import("./pages/workflows/WorkflowEditorPage"));
const ExecutePage = lazy(() => import("./pages/workflows/ExecutePage"));
const DryRunPage = lazy(() => import("./pages/workflows/DryRunPage"));
const AgentsPage = lazy(() => import("./pages/agents/AgentsPage"));
const ApiKeysPage = lazy(() => import("./pages/api-keys/ApiKeysPage"));
const WebhooksPage = lazy(() => import("./pages/webhooks/WebhooksPage"));
const WebhookPage = lazy(() => import("./pages/webhooks/WebhookPage"));
const AnalyticsPage = lazy(() => import("./pages/analytics/AnalyticsPage"));
const AuditPage = lazy(() => import("./pages/audit/AuditPage"));
const SettingsPage = lazy(() => import("./pages/settings/SettingsPage"));

export const routes: RouteObject[] = [
  { path: "/sign-in", element: <SignInPage /> },
  {
    element: (
      <RequireSignIn>
        <AppShell />
      </RequireSignIn>
    ),
    children: [
      { index: true, element: <Navigate to="/dashboard" replace /> },
      { path: "dashboard", element: <OverviewPage /> },
      { path: "runs", element: <RunsPage /> },
      { path: "runs/:runId", element: <RunPage /> },
      { path: "workflows", element: <WorkflowsPage /> },
      { path: "workflows/new", element: <WorkflowEditorPage /> },
      { path: "workflows/:workflowId", element: <WorkflowPage /> },
      { path: "workflows/:workflowId/edit", element: <WorkflowEditorPage /> },
      { path: "workflows/:workflowId/execute", element: <ExecutePage /> },
      { path: "workflows/:workflowId/test", element: <DryRunPage /> },
      { path: "agents", element: <AgentsPage /> },
      { path: "api-keys", element: <ApiKeysPage /> },
      { path: "webhooks", element: <WebhooksPage /> },
      { path: "webhooks/:webhookId", element: <WebhookPage /> },
      { path: "analytics", element: <AnalyticsPage /> },
      { path: "audit", element: <AuditPage /> },
      { path: "logs", element: <Navigate to="/audit" replace /> },
      { path: "settings", element: <SettingsPage /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
];
