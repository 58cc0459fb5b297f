import {
  Background,
  Controls,
  type Edge,
  Handle,
  MarkerType,
  type Node,
  type NodeProps,
  Position,
  ReactFlow,
} from "@xyflow/react";
import { clsx } from "clsx";
import { memo, useMemo } from "react";
import { useMediaQuery } from "../lib/useMediaQuery";
import { TONE_CLASSES, statusLook } from "../status/statuses";
import { kindLook, stepSummary } from "./stepKinds";
import { type GraphStep, type LaidOutNode, NODE_HEIGHT, NODE_WIDTH, edgesOf, layout } from "./stepGraph";

type StepNodeData = LaidOutNode & { vertical?: boolean } & Record<string, unknown>;

const StepNode = memo(function StepNode({ data }: NodeProps<Node<StepNodeData>>) {
  const look = data.status ? statusLook(data.status) : null;
  const tone = data.missing ? TONE_CLASSES.danger : look ? TONE_CLASSES[look.tone] : TONE_CLASSES.neutral;
  const kind = kindLook(data.kind);
  return (
    <div
      data-step={data.id}
      data-kind={data.kind ?? "agent"}
      data-status={data.status ?? (data.missing ? "missing" : "")}
      style={{ width: NODE_WIDTH, height: NODE_HEIGHT }}
      className={clsx("flex flex-col justify-center rounded-lg border-2 px-3 text-left shadow-sm", tone.node)}
    >
      <Handle type="target" position={data.vertical ? Position.Top : Position.Left} className="!bg-slate-400" isConnectable={false} />
      <div className="flex items-center justify-between gap-2">
        <span className="truncate font-mono text-sm font-semibold text-slate-900">{data.id}</span>
        {look && (
          <span className="flex shrink-0 items-center gap-1 text-xs font-medium text-slate-800">
            <span aria-hidden="true" className={clsx("size-2 rounded-full", tone.dot)} />
            {look.label}
          </span>
        )}
      </div>
      <div className="flex items-center gap-1 truncate text-xs text-slate-700">
        {!data.missing && <kind.Icon aria-label={kind.label} role="img" className="size-3.5 shrink-0" />}
        {data.missing ? "missing step" : stepSummary(data)}
        {data.attempts && data.attempts > 1 ? ` · ${data.attempts} attempts` : ""}
      </div>
      <Handle type="source" position={data.vertical ? Position.Bottom : Position.Right} className="!bg-slate-400" isConnectable={false} />
    </div>
  );
});

const NODE_TYPES = { step: StepNode };

/** A workflow's steps drawn with React Flow, each coloured by its status when it has one. */
export function StepGraph({
  steps,
  label,
  height = 320,
  onSelect,
}: {
  steps: GraphStep[];
  label: string;
  height?: number;
  onSelect?: (stepId: string) => void;
}) {
  // A phone's screen is tall: steps run downwards there, left to right elsewhere.
  const narrow = useMediaQuery("(max-width: 640px)");
  const { nodes, edges } = useMemo(() => {
    const laid = layout(steps, narrow ? "TB" : "LR");
    const running = new Set(steps.filter((s) => s.status === "RUNNING").map((s) => s.id));
    const nodes: Node<StepNodeData>[] = laid.map((step) => ({
      id: step.id,
      type: "step",
      position: { x: step.x, y: step.y },
      data: { ...step, vertical: narrow } as StepNodeData,
      ariaLabel: `${kindLook(step.kind).label} step ${step.id}${step.status ? `, ${statusLook(step.status).label}` : ""}${step.missing ? ", missing" : ""}`,
      draggable: false,
      connectable: false,
    }));
    const edges: Edge[] = edgesOf(steps).map((edge) => ({
      ...edge,
      animated: running.has(edge.target),
      markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
      style: { strokeWidth: 1.5 },
    }));
    return { nodes, edges };
  }, [steps, narrow]);

  return (
    <figure aria-label={label} style={{ height }} className="w-full overflow-hidden rounded-md bg-slate-50 ring-1 ring-slate-200">
      {steps.length === 0 ? (
        <p className="p-6 text-sm text-slate-600">No steps to draw.</p>
      ) : (
        <ReactFlow
          key={`${narrow}:${nodes.map((n) => n.id).join(",")}`}
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          fitView
          fitViewOptions={{ padding: 0.15, maxZoom: 1.2 }}
          minZoom={0.2}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={Boolean(onSelect)}
          onNodeClick={onSelect ? (_, node) => onSelect(node.id) : undefined}
          proOptions={{ hideAttribution: true }}
        >
          <Background gap={16} color="#e2e8f0" />
          <Controls showInteractive={false} />
        </ReactFlow>
      )}
    </figure>
  );
}
