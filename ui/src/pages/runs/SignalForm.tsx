import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Send } from "lucide-react";
import { type FormEvent, useState } from "react";
import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { Button } from "../../components/Button";
import { Field, TextArea } from "../../components/Field";
import { ErrorNotice } from "../../components/Notice";

/**
 * Sends the signal a WAITING signal step waits for (ADR 0016): its data (JSON) becomes the
 * step's output. Shown only to roles with the ``signal`` permission (operators and up).
 */
export function SignalForm({ runId, stepId, signal }: { runId: string; stepId: string; signal: string }) {
  const [text, setText] = useState("{}");
  const [parseError, setParseError] = useState<string | null>(null);
  const queries = useQueryClient();
  const send = useMutation({
    mutationFn: async (data: unknown) =>
      unwrap(
        await api.POST("/api/v1/runs/{run_id}/signals/{signal}", {
          params: { path: { run_id: runId, signal } },
          body: { data, step_id: stepId },
        }),
      ),
    onSuccess: () => queries.invalidateQueries({ queryKey: ["runs", runId] }),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    let data: unknown;
    try {
      data = JSON.parse(text.trim() || "null");
    } catch {
      setParseError("This is not JSON.");
      return;
    }
    setParseError(null);
    send.mutate(data);
  }

  const fieldErrors = send.error instanceof ApiError ? send.error.errors.map((e) => `${e.field}: ${e.message}`) : [];
  return (
    <form onSubmit={submit} className="space-y-2 rounded-md bg-amber-50 p-3 ring-1 ring-amber-200" aria-label={`Send signal ${signal}`}>
      <Field
        label={`Data for the signal “${signal}” (JSON)`}
        hint="The step outputs it; later steps read it as its output."
        error={parseError ?? (fieldErrors.length > 0 ? fieldErrors.join("; ") : null)}
      >
        {(props) => (
          <TextArea {...props} name="signal-data" rows={3} value={text} onChange={(e) => setText(e.target.value)} />
        )}
      </Field>
      {send.isError && fieldErrors.length === 0 && <ErrorNotice error={send.error} title="The signal was not taken." />}
      {send.isSuccess ? (
        <p role="status" className="text-sm text-emerald-800">Sent: the run goes on.</p>
      ) : (
        <Button type="submit" variant="primary" size="sm" busy={send.isPending}>
          <Send aria-hidden="true" className="size-3.5" /> Send {signal}
        </Button>
      )}
    </form>
  );
}
