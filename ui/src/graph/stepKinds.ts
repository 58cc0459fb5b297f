/**
 * How each kind of step looks (ADR 0016): a label and an icon, in the graph and the step list.
 * A kind not listed here (a newer server's) is shown by its name with a neutral icon.
 */
import {
  BellRing,
  Bot,
  Circle,
  GitBranch,
  Hourglass,
  type LucideIcon,
  Repeat,
  RefreshCw,
  Split,
  Workflow,
} from "lucide-react";

export interface KindLook {
  label: string;
  Icon: LucideIcon;
}

const KINDS: Record<string, KindLook> = {
  agent: { label: "Agent", Icon: Bot },
  if: { label: "If", Icon: GitBranch },
  switch: { label: "Switch", Icon: Split },
  foreach: { label: "For each", Icon: Repeat },
  do_while: { label: "Do while", Icon: RefreshCw },
  wait: { label: "Wait", Icon: Hourglass },
  signal: { label: "Signal", Icon: BellRing },
  workflow: { label: "Sub-workflow", Icon: Workflow },
};

export function kindLook(kind: string | null | undefined): KindLook {
  const name = kind || "agent";
  return KINDS[name] ?? { label: name.replace(/_/g, " "), Icon: Circle };
}

/** Where an instance ran: ``each[2].shout`` is item 3 of ``each``, step ``shout``. */
export function instanceOf(stepId: string): { parent: string; index: number; step: string } | null {
  const match = /^(.*)\[(\d+)\]\.([^.[\]]+)$/.exec(stepId);
  if (!match) return null;
  return { parent: match[1]!, index: Number(match[2]), step: match[3]! };
}

/** A short line about a step: its agent, the signal it waits for, its child run... */
export function stepSummary(step: {
  kind?: string | null;
  agent?: string | null;
  signal?: string | null;
}): string {
  const kind = step.kind || "agent";
  if (kind === "agent") return step.agent ? `agent ${step.agent}` : "no agent";
  if (kind === "signal" && step.signal) return `signal “${step.signal}”`;
  return kindLook(kind).label;
}
