/** The editable part of a workflow: its definition (ADR 0005), as the editor's JSON text. */
import type { Workflow } from "../../api/types";

export const DEFINITION_FIELDS = [
  "start_step",
  "steps",
  "variables",
  "input_schema",
  "timeout_ms",
  "max_parallel_steps",
  "triggers",
] as const;

/** What ``PUT /workflows/{id}`` takes to keep the workflow as it is (nulls left out). */
export function definitionOf(workflow: Workflow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of DEFINITION_FIELDS) {
    const value = workflow[field];
    if (value !== null && value !== undefined) out[field] = value;
  }
  return out;
}

export const NEW_WORKFLOW = {
  name: "my-workflow",
  description: "What this workflow does.",
  start_step: "first",
  steps: {
    first: { agent_name: "echo", next_step: "second", input_mapping: { text: "$.input.text" } },
    second: { agent_name: "echo", input_mapping: { text: "$.steps.first.output.text" } },
  },
  input_schema: { type: "object", required: ["text"], properties: { text: { type: "string" } } },
};

export function pretty(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
