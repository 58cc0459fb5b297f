/** Names for the API's schemas, so that pages read ``Run`` rather than a path into ``schema``. */
import type { components } from "./schema";

type Schemas = components["schemas"];
export type Run = Schemas["RunResponse"];
export type StepExecution = Schemas["StepExecution"];
export type Attempt = Schemas["Attempt"];
export type LogEntry = Schemas["LogEntry"];
export type Workflow = Schemas["WorkflowResponse"];
export type WorkflowVersion = Schemas["WorkflowVersionResponse"];
export type VersionChanges = Schemas["VersionChanges"];
export type TestResult = Schemas["TestResult"];
export type TracedStep = Schemas["TracedStep"];
export type Agent = Schemas["AgentResponse"];
export type AgentHealth = Schemas["AgentHealth"];
export type ApiKey = Schemas["ApiKeyResponse"];
export type ApiKeyCreated = Schemas["ApiKeyCreated"];
export type Webhook = Schemas["WebhookResponse"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export type AuditEntry = Schemas["AuditEntry"];
export type WhoAmI = Schemas["WhoAmI"];
export type RunAccepted = Schemas["RunAccepted"];

/** Every list of the API answers this shape (DESIGN.md, "Lists"). */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}
