/**
 * How each status looks. One table for runs, steps, attempts, workflows, agents, keys, webhooks
 * and deliveries; a status not listed here (a newer server's) is shown as it is, in a neutral
 * tone. Adding one is a line: ``WAITING: { tone: "waiting", label: "Waiting" }``.
 */
export type Tone = "neutral" | "pending" | "running" | "success" | "danger" | "muted" | "waiting" | "paused";

export interface StatusLook {
  tone: Tone;
  label: string;
  /** Still changing: a run or step in this status may move on (live views keep listening). */
  active?: boolean;
}

const LOOKS: Record<string, StatusLook> = {
  // runs and steps
  PENDING: { tone: "pending", label: "Pending", active: true },
  RUNNING: { tone: "running", label: "Running", active: true },
  // control flow (ADR 0016): a wait or signal step, a run waiting on one; a run paused by request
  WAITING: { tone: "waiting", label: "Waiting", active: true },
  PAUSED: { tone: "paused", label: "Paused", active: true },
  SUCCEEDED: { tone: "success", label: "Succeeded" },
  FAILED: { tone: "danger", label: "Failed" },
  CANCELLED: { tone: "muted", label: "Cancelled" },
  SKIPPED: { tone: "muted", label: "Skipped" },
  // attempts and dry-run steps
  succeeded: { tone: "success", label: "Succeeded" },
  failed: { tone: "danger", label: "Failed" },
  running: { tone: "running", label: "Running", active: true },
  interrupted: { tone: "waiting", label: "Interrupted" },
  cancelled: { tone: "muted", label: "Cancelled" },
  skipped: { tone: "muted", label: "Skipped" },
  // agents, workflows, webhooks, keys, deliveries
  active: { tone: "success", label: "Active" },
  inactive: { tone: "muted", label: "Inactive" },
  paused: { tone: "paused", label: "Paused" },
  disabled: { tone: "muted", label: "Disabled" },
  removed: { tone: "muted", label: "Removed" },
  deleted: { tone: "muted", label: "Deleted" },
  revoked: { tone: "muted", label: "Revoked" },
  expired: { tone: "muted", label: "Expired" },
  pending: { tone: "pending", label: "Pending", active: true },
  delivered: { tone: "success", label: "Delivered" },
  reachable: { tone: "success", label: "Reachable" },
  unreachable: { tone: "danger", label: "Unreachable" },
};

export const RUN_STATUSES = ["PENDING", "RUNNING", "WAITING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"] as const;
export const TERMINAL_RUN_STATUSES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export function statusLook(status: string | null | undefined): StatusLook {
  if (!status) return { tone: "neutral", label: "Unknown" };
  return LOOKS[status] ?? { tone: "neutral", label: humanise(status) };
}

function humanise(status: string): string {
  const words = status.replace(/[_-]+/g, " ").toLowerCase().trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Tailwind classes per tone: badges (text on a tint, at least 4.5:1) and graph nodes. */
export const TONE_CLASSES: Record<Tone, { badge: string; node: string; dot: string }> = {
  neutral: {
    badge: "bg-slate-100 text-slate-800 ring-slate-300",
    node: "border-slate-400 bg-white",
    dot: "bg-slate-500",
  },
  pending: {
    badge: "bg-slate-100 text-slate-700 ring-slate-300",
    node: "border-slate-300 border-dashed bg-slate-50",
    dot: "bg-slate-400",
  },
  running: {
    badge: "bg-sky-100 text-sky-900 ring-sky-300",
    node: "border-sky-500 bg-sky-50 shadow-sky-200",
    dot: "bg-sky-500 animate-pulse",
  },
  success: {
    badge: "bg-emerald-100 text-emerald-900 ring-emerald-300",
    node: "border-emerald-600 bg-emerald-50",
    dot: "bg-emerald-600",
  },
  danger: {
    badge: "bg-red-100 text-red-900 ring-red-300",
    node: "border-red-600 bg-red-50",
    dot: "bg-red-600",
  },
  muted: {
    badge: "bg-zinc-100 text-zinc-700 ring-zinc-300",
    node: "border-zinc-400 bg-zinc-100",
    dot: "bg-zinc-400",
  },
  waiting: {
    badge: "bg-amber-100 text-amber-900 ring-amber-300",
    node: "border-amber-500 bg-amber-50",
    dot: "bg-amber-500",
  },
  paused: {
    badge: "bg-violet-100 text-violet-900 ring-violet-300",
    node: "border-violet-500 border-dashed bg-violet-50",
    dot: "bg-violet-500",
  },
};

/** Chart colours per tone (the timeline's bars), as plain CSS colours. */
export const TONE_COLOURS: Record<Tone, string> = {
  neutral: "#64748b",
  pending: "#94a3b8",
  running: "#0284c7",
  success: "#059669",
  danger: "#dc2626",
  muted: "#a1a1aa",
  waiting: "#d97706",
  paused: "#7c3aed",
};
