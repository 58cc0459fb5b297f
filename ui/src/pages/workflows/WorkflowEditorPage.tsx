import { useMutation, useQueryClient } from "@tanstack/react-query";
import { parse } from "jsonc-parser";
import { Save } from "lucide-react";
import { useEffect, useMemo, useRef, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { useWorkflow } from "../../api/queries";
import { useCan } from "../../auth/session";
import { Button, ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { type EditorProblem, JsonEditor, type JsonEditorHandle } from "../../components/JsonEditor";
import { ErrorNotice, Loading, Notice } from "../../components/Notice";
import { StepGraph } from "../../graph/StepGraph";
import { stepsOfDefinition } from "../../graph/stepGraph";
import { NEW_WORKFLOW, definitionOf, pretty } from "./definition";
import { locateField } from "./fieldLocation";

interface Problem extends EditorProblem {
  field: string;
}

function useDebounced<T>(value: T, ms: number): T {
  const [current, setCurrent] = useState(value);
  useEffect(() => {
    const timer = window.setTimeout(() => setCurrent(value), ms);
    return () => window.clearTimeout(timer);
  }, [value, ms]);
  return current;
}

/**
 * The definition as JSON, the graph redrawn as you type, and on saving the server's
 * validation: each problem marked at its field in the text and listed under it.
 */
export default function WorkflowEditorPage() {
  const { workflowId } = useParams();
  const creating = workflowId === undefined;
  const workflow = useWorkflow(workflowId ?? "");
  const [text, setText] = useState<string | null>(creating ? pretty(NEW_WORKFLOW) : null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [saved, setSaved] = useState<string | null>(null);
  const editor = useRef<JsonEditorHandle>(null);
  const canManage = useCan("manage");
  const navigate = useNavigate();
  const queries = useQueryClient();

  useEffect(() => {
    if (!creating && text === null && workflow.data) setText(pretty(definitionOf(workflow.data)));
  }, [creating, text, workflow.data]);

  const drawn = useDebounced(text ?? "", 200);
  const steps = useMemo(() => {
    const parsed = parse(drawn, [], { allowTrailingComma: true }) as { steps?: unknown } | undefined;
    return stepsOfDefinition(parsed?.steps);
  }, [drawn]);

  const save = useMutation({
    mutationFn: async (body: Record<string, unknown>) =>
      creating
        ? unwrap(await api.POST("/api/v1/workflows", { body: body as never }))
        : unwrap(
            await api.PUT("/api/v1/workflows/{workflow_id}", {
              params: { path: { workflow_id: workflowId! } },
              body: body as never,
            }),
          ),
    onSuccess: async (result) => {
      setProblems([]);
      setSaved(`Saved as version ${result.version}.`);
      await queries.invalidateQueries({ queryKey: ["workflows"] });
      if (creating) navigate(`/workflows/${result.id}`);
    },
    onError: (error) => {
      setSaved(null);
      if (error instanceof ApiError && text !== null) {
        setProblems(
          error.errors.map((e) => ({ field: e.field, message: e.message, ...locateField(text, e.field) })),
        );
      }
    },
  });

  function submit() {
    if (text === null) return;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      setProblems([{ field: "(document)", message: `Not valid JSON: ${(error as Error).message}`, from: 0, to: 1 }]);
      return;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      setProblems([{ field: "(document)", message: "The definition must be a JSON object.", from: 0, to: 1 }]);
      return;
    }
    save.mutate(body as Record<string, unknown>);
  }

  if (!creating && workflow.isPending) return <Loading what="Loading the workflow" />;
  if (!creating && workflow.isError) return <ErrorNotice error={workflow.error} />;
  const title = creating ? "New workflow" : `Edit ${workflow.data?.name ?? ""}`;

  return (
    <div className="space-y-5">
      <PageHeader
        title={title}
        subtitle={
          creating
            ? "Write the definition; the server checks it when you save."
            : `Saving a changed definition makes version ${(workflow.data?.version ?? 0) + 1}; earlier versions stay runnable.`
        }
        actions={
          <>
            <ButtonLink to={creating ? "/workflows" : `/workflows/${workflowId}`} variant="ghost">
              Back
            </ButtonLink>
            <Button variant="primary" onClick={submit} busy={save.isPending} disabled={!canManage}>
              <Save aria-hidden="true" className="size-4" /> {creating ? "Create" : "Save"}
            </Button>
          </>
        }
      />
      {!canManage && <Notice tone="warning">Your role may read this workflow but not change it.</Notice>}
      {saved && <Notice tone="success">{saved}</Notice>}
      <div className="grid gap-5 xl:grid-cols-2">
        <Card title="Definition">
          {text !== null && (
            <JsonEditor
              ref={editor}
              value={text}
              onChange={(value) => {
                setText(value);
                setSaved(null);
              }}
              problems={problems}
              label="Workflow definition (JSON)"
            />
          )}
          {problems.length > 0 && (
            <div role="alert" aria-label="Problems" className="mt-3 rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-900">
              <p className="font-semibold">
                {problems.length === 1 ? "The server found a problem" : `The server found ${problems.length} problems`}
                :
              </p>
              <ul className="mt-1 space-y-1">
                {problems.map((p) => (
                  <li key={`${p.field}:${p.message}`} data-field={p.field}>
                    <button
                      type="button"
                      className="text-left underline-offset-2 hover:underline"
                      onClick={() => editor.current?.reveal(p.from, p.to)}
                    >
                      <code className="font-mono font-semibold">{p.field}</code>: {p.message}
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          )}
          {save.isError && !(save.error instanceof ApiError && save.error.errors.length > 0) && (
            <div className="mt-3">
              <ErrorNotice error={save.error} />
            </div>
          )}
        </Card>
        <Card title="Graph, as you type">
          <StepGraph steps={steps} label="Steps of the definition being edited" height={460} />
        </Card>
      </div>
    </div>
  );
}
