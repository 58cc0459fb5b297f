import { useMutation } from "@tanstack/react-query";
import { FlaskConical } from "lucide-react";
import { type FormEvent, useState } from "react";
import { useParams } from "react-router";
import { api, unwrap } from "../../api/client";
import { useWorkflow } from "../../api/queries";
import type { TestResult } from "../../api/types";
import { Button, ButtonLink } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { Field, TextArea } from "../../components/Field";
import { JsonBlock } from "../../components/JsonBlock";
import { ErrorNotice, Loading } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { Table, Td, Th } from "../../components/Table";
import { formatDuration } from "../../components/Time";
import { StepGraph } from "../../graph/StepGraph";

function Trace({ result }: { result: TestResult }) {
  const steps = [...result.steps].sort((a, b) => a.order - b.order);
  return (
    <div className="space-y-5">
      <Card
        title={
          <span className="flex items-center gap-2">
            Trace <StatusBadge status={result.status} /> <span className="font-normal text-slate-600">{formatDuration(result.duration_ms)}</span>
          </span>
        }
      >
        <StepGraph
          steps={steps.map((s) => ({ id: s.step_id, agent: s.agent_name, dependsOn: s.depends_on, status: s.status }))}
          label="Steps of the dry run by status"
        />
        <div className="mt-4">
          <Table caption="Steps of the dry run, in the order they ran">
            <thead>
              <tr>
                <Th>#</Th>
                <Th>Step</Th>
                <Th>Status</Th>
                <Th>Input</Th>
                <Th>Output</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {steps.map((s) => (
                <tr key={s.step_id}>
                  <Td>
                    {s.order}
                    <span className="block text-xs text-slate-600">wave {s.wave}</span>
                  </Td>
                  <Td>
                    <span className="font-mono font-semibold">{s.step_id}</span>
                    <span className="block text-xs text-slate-600">agent {s.agent_name}</span>
                  </Td>
                  <Td>
                    <StatusBadge status={s.status} />
                    {s.error_message && <p className="mt-1 text-xs text-red-800">{s.error_message}</p>}
                  </Td>
                  <Td className="min-w-48">
                    <JsonBlock value={s.input_data} label={`Input of ${s.step_id}`} />
                  </Td>
                  <Td className="min-w-48">
                    <JsonBlock value={s.output_data} label={`Output of ${s.step_id}`} />
                    {s.output_source && <span className="text-xs text-slate-600">{s.output_source}</span>}
                  </Td>
                </tr>
              ))}
            </tbody>
          </Table>
        </div>
      </Card>
      <Card title="Output">
        <JsonBlock value={result.output_data} label="Output of the dry run" />
      </Card>
    </div>
  );
}

/** A dry run: the trace of a workflow with mocked outputs, recording nothing, calling no agent. */
export default function DryRunPage() {
  const { workflowId = "" } = useParams();
  const workflow = useWorkflow(workflowId);
  const [input, setInput] = useState("{}");
  const [mocks, setMocks] = useState("{}");
  const [problem, setProblem] = useState<string | null>(null);
  const test = useMutation({
    mutationFn: async (body: { input_data: unknown; mock_outputs: unknown }) =>
      unwrap(
        await api.POST("/api/v1/workflows/{workflow_id}/test", {
          params: { path: { workflow_id: workflowId } },
          body: body as never,
        }),
      ),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    try {
      setProblem(null);
      test.mutate({ input_data: JSON.parse(input), mock_outputs: JSON.parse(mocks) });
    } catch {
      setProblem("Input and mocked outputs must be JSON.");
    }
  }

  if (workflow.isPending) return <Loading what="Loading the workflow" />;
  if (workflow.isError) return <ErrorNotice error={workflow.error} />;
  return (
    <div className="space-y-5">
      <PageHeader
        title={`Dry run of ${workflow.data.name}`}
        subtitle="Steps get mocked outputs (or their input echoed); nothing is recorded and no agent is called."
        actions={<ButtonLink to={`/workflows/${workflowId}`} variant="ghost">Back</ButtonLink>}
      />
      <form onSubmit={submit} aria-label="Dry run">
        <Card>
          <div className="grid gap-4 md:grid-cols-2">
            <Field label="Input (JSON)" error={problem}>
              {(props) => <TextArea {...props} rows={6} value={input} onChange={(e) => setInput(e.target.value)} />}
            </Field>
            <Field label="Mocked outputs (JSON, by step)" hint='For example {"fetch": {"text": "hello"}}'>
              {(props) => <TextArea {...props} rows={6} value={mocks} onChange={(e) => setMocks(e.target.value)} />}
            </Field>
          </div>
          <Button type="submit" variant="primary" className="mt-4" busy={test.isPending}>
            <FlaskConical aria-hidden="true" className="size-4" /> Dry run
          </Button>
        </Card>
      </form>
      {test.isError && <ErrorNotice error={test.error} title="The dry run was refused." />}
      {test.data && <Trace result={test.data} />}
    </div>
  );
}
