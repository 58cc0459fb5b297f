import { useMutation } from "@tanstack/react-query";
import { Play } from "lucide-react";
import { type FormEvent, useMemo, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { useWorkflow } from "../../api/queries";
import type { Workflow } from "../../api/types";
import { useCan } from "../../auth/session";
import { Button, ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { Field, Select, TextArea, TextInput } from "../../components/Field";
import { ErrorNotice, Loading, Notice } from "../../components/Notice";
import { FormProblem, type FormField, fieldOfError, fieldsOf, inputOf } from "./schemaForm";

function Control({
  field,
  value,
  onChange,
  error,
}: {
  field: FormField;
  value: string;
  onChange: (value: string) => void;
  error?: string;
}) {
  const label = (
    <>
      {field.title}
      {field.required ? <span className="text-red-700"> *</span> : <span className="font-normal text-slate-600"> (optional)</span>}
    </>
  );
  return (
    <Field label={label} hint={field.description} error={error}>
      {(props) =>
        field.kind === "boolean" ? (
          <Select {...props} name={field.name} value={value} onChange={(e) => onChange(e.target.value)}>
            <option value="false">No</option>
            <option value="true">Yes</option>
          </Select>
        ) : field.kind === "choice" ? (
          <Select {...props} name={field.name} value={value} onChange={(e) => onChange(e.target.value)}>
            <option value="">—</option>
            {(field.choices ?? []).map((choice) => (
              <option key={JSON.stringify(choice)} value={JSON.stringify(choice)}>
                {String(choice)}
              </option>
            ))}
          </Select>
        ) : field.kind === "json" ? (
          <TextArea {...props} name={field.name} rows={3} value={value} onChange={(e) => onChange(e.target.value)} />
        ) : (
          <TextInput
            {...props}
            name={field.name}
            inputMode={field.kind === "string" ? undefined : "decimal"}
            value={value}
            required={field.required}
            onChange={(e) => onChange(e.target.value)}
          />
        )
      }
    </Field>
  );
}

function ExecuteForm({ workflow }: { workflow: Workflow }) {
  const fields = useMemo(() => fieldsOf(workflow.input_schema), [workflow.input_schema]);
  const [asJson, setAsJson] = useState(fields === null);
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries((fields ?? []).map((f) => [f.name, f.initial])),
  );
  const [jsonInput, setJsonInput] = useState("{}");
  const [variables, setVariables] = useState("");
  const [version, setVersion] = useState("");
  const [idempotencyKey, setIdempotencyKey] = useState("");
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const navigate = useNavigate();

  const execute = useMutation({
    mutationFn: async (body: { input_data: Record<string, unknown>; variables?: Record<string, unknown>; version?: number }) =>
      unwrap(
        await api.POST("/api/v1/workflows/{workflow_id}/execute", {
          params: {
            path: { workflow_id: workflow.id },
            header: idempotencyKey.trim() ? ({ "Idempotency-Key": idempotencyKey.trim() } as never) : undefined,
          },
          body: body as never,
        }),
      ),
    onSuccess: (accepted) => navigate(`/runs/${accepted.run_id}`),
    onError: (error) => {
      if (!(error instanceof ApiError)) return;
      const found: Record<string, string> = {};
      for (const e of error.errors) {
        const name = fieldOfError(e.field, e.message);
        if (name) found[name] = e.message;
      }
      setFieldErrors(found);
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    setFieldErrors({});
    try {
      const input = asJson || fields === null ? parseObject(jsonInput, "input") : inputOf(fields, values);
      const vars = variables.trim() ? parseObject(variables, "variables") : undefined;
      execute.mutate({
        input_data: input,
        ...(vars ? { variables: vars } : {}),
        ...(version ? { version: Number(version) } : {}),
      });
    } catch (problem) {
      if (problem instanceof FormProblem) setFieldErrors({ [problem.field]: problem.message });
    }
  }

  return (
    <form onSubmit={submit} className="space-y-5" noValidate aria-label={`Run ${workflow.name}`}>
      <Card
        title="Input"
        actions={
          fields !== null && (
            <Button size="sm" variant="ghost" onClick={() => setAsJson(!asJson)}>
              {asJson ? "Use the form" : "Edit as JSON"}
            </Button>
          )
        }
      >
        {asJson || fields === null ? (
          <Field label="Input (JSON)" error={fieldErrors.input}>
            {(props) => (
              <TextArea {...props} rows={8} value={jsonInput} onChange={(e) => setJsonInput(e.target.value)} />
            )}
          </Field>
        ) : fields.length === 0 ? (
          <p className="text-sm text-slate-600">This workflow takes no input.</p>
        ) : (
          <div className="grid gap-4 md:grid-cols-2">
            {fields.map((field) => (
              <Control
                key={field.name}
                field={field}
                value={values[field.name] ?? ""}
                onChange={(value) => setValues((current) => ({ ...current, [field.name]: value }))}
                error={fieldErrors[field.name]}
              />
            ))}
          </div>
        )}
      </Card>
      <Card title="Options">
        <div className="grid gap-4 md:grid-cols-3">
          <Field label="Version" hint={`Empty: the current one, ${workflow.version}.`}>
            {(props) => (
              <TextInput {...props} inputMode="numeric" value={version} onChange={(e) => setVersion(e.target.value)} />
            )}
          </Field>
          <Field label="Idempotency key" hint="The same key starts the run once.">
            {(props) => <TextInput {...props} value={idempotencyKey} onChange={(e) => setIdempotencyKey(e.target.value)} />}
          </Field>
          <Field label="Variables (JSON)" hint="Overrides the workflow's variables." error={fieldErrors.variables}>
            {(props) => (
              <TextArea {...props} rows={2} placeholder='{"style": "prose"}' value={variables} onChange={(e) => setVariables(e.target.value)} />
            )}
          </Field>
        </div>
      </Card>
      {execute.isError && <ErrorNotice error={execute.error} title="The run was not started." />}
      <div className="flex gap-2">
        <Button type="submit" variant="primary" busy={execute.isPending}>
          <Play aria-hidden="true" className="size-4" /> Start run
        </Button>
        <ButtonLink to={`/workflows/${workflow.id}/test`}>Dry run instead</ButtonLink>
      </div>
    </form>
  );
}

function parseObject(text: string, field: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FormProblem(field, "must be JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FormProblem(field, "must be a JSON object");
  }
  return value as Record<string, unknown>;
}

export default function ExecutePage() {
  const { workflowId = "" } = useParams();
  const workflow = useWorkflow(workflowId);
  const canExecute = useCan("execute");
  if (workflow.isPending) return <Loading what="Loading the workflow" />;
  if (workflow.isError) return <ErrorNotice error={workflow.error} />;
  return (
    <div>
      <PageHeader
        title={`Run ${workflow.data.name}`}
        subtitle={workflow.data.description ?? `Version ${workflow.data.version}`}
        actions={<ButtonLink to={`/workflows/${workflowId}`} variant="ghost">Back</ButtonLink>}
      />
      {!canExecute && (
        <div className="mb-4">
          <Notice tone="warning">Your role may read this workflow but not run it.</Notice>
        </div>
      )}
      <ExecuteForm workflow={workflow.data} />
    </div>
  );
}
