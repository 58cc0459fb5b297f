/**
 * A workflow's steps as a graph: one node per step, an edge from each step to the steps that
 * wait for it (``depends_on``, or a ``next_step`` pointing at them), laid out with dagre.
 * Pure functions: the editor calls them on every keystroke with whatever the text holds, so
 * anything malformed is skipped, and a reference to a step that does not exist becomes a
 * "missing" node instead of an error.
 */
import dagre from "@dagrejs/dagre";

export interface GraphStep {
  id: string;
  agent: string | null;
  /** The step's kind (ADR 0016): ``agent`` unless the definition's ``type`` says otherwise. */
  kind?: string;
  /** The signal a signal step waits for. */
  signal?: string | null;
  dependsOn: string[];
  status?: string;
  attempts?: number;
  missing?: boolean;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
}

export interface LaidOutNode extends GraphStep {
  x: number;
  y: number;
}

export const NODE_WIDTH = 184;
export const NODE_HEIGHT = 68;

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The steps of a definition as written (``{"steps": {"a": {"agent_name", "next_step"...}}}``). */
export function stepsOfDefinition(steps: unknown): GraphStep[] {
  if (typeof steps !== "object" || steps === null || Array.isArray(steps)) return [];
  const entries = Object.entries(steps as Record<string, unknown>);
  const found = new Map<string, GraphStep>();
  for (const [id, raw] of entries) {
    const step = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    found.set(id, {
      id,
      agent: typeof step.agent_name === "string" ? step.agent_name : null,
      kind: typeof step.type === "string" ? step.type : "agent",
      signal: typeof step.signal === "string" ? step.signal : null,
      dependsOn: strings(step.depends_on),
    });
  }
  // ``next_step: b`` on ``a`` means ``b`` depends on ``a`` (ADR 0005); so do an ``if``'s
  // ``then`` and ``else`` and a ``switch``'s cases and ``default`` (ADR 0016).
  for (const [id, raw] of entries) {
    for (const target of successors(raw)) {
      const step = found.get(target) ?? missingStep(found, target);
      if (!step.dependsOn.includes(id)) step.dependsOn.push(id);
    }
  }
  for (const step of [...found.values()]) {
    for (const dependency of step.dependsOn) if (!found.has(dependency)) missingStep(found, dependency);
  }
  return [...found.values()];
}

function successors(raw: unknown): string[] {
  if (typeof raw !== "object" || raw === null) return [];
  const step = raw as Record<string, unknown>;
  const targets = [...strings(step.next_step), ...strings(step.then), ...strings(step.else)];
  if (step.type === "switch") {
    const cases = step.cases;
    if (typeof cases === "object" && cases !== null) {
      targets.push(...Object.values(cases as Record<string, unknown>).flatMap(strings));
    }
    targets.push(...strings(step.default));
  }
  return [...new Set(targets)];
}

function missingStep(found: Map<string, GraphStep>, id: string): GraphStep {
  const step: GraphStep = { id, agent: null, dependsOn: [], missing: true };
  found.set(id, step);
  return step;
}

export function edgesOf(steps: GraphStep[]): GraphEdge[] {
  return steps.flatMap((step) =>
    step.dependsOn.map((source) => ({ id: `${source}->${step.id}`, source, target: step.id })),
  );
}

/** Positions for every node (top-left corners), left to right or top to bottom. */
export function layout(steps: GraphStep[], direction: "LR" | "TB" = "LR"): LaidOutNode[] {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: direction, nodesep: 28, ranksep: 56, marginx: 8, marginy: 8 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const step of steps) graph.setNode(step.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const edge of edgesOf(steps)) graph.setEdge(edge.source, edge.target);
  dagre.layout(graph);
  return steps.map((step) => {
    const node = graph.node(step.id);
    return { ...step, x: (node?.x ?? 0) - NODE_WIDTH / 2, y: (node?.y ?? 0) - NODE_HEIGHT / 2 };
  });
}
