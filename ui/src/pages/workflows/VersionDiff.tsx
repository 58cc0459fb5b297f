import { clsx } from "clsx";
import { diffLines } from "diff";
import { useMemo } from "react";
import type { WorkflowVersion } from "../../api/types";
import { pretty } from "./definition";
import { DEFINITION_FIELDS } from "./definition";

function definitionText(version: WorkflowVersion): string {
  const out: Record<string, unknown> = {};
  for (const field of DEFINITION_FIELDS) {
    const value = version[field];
    if (value !== null && value !== undefined) out[field] = value;
  }
  return pretty(out);
}

/** Two versions' definitions, line by line: removed lines in red, added ones in green. */
export function VersionDiff({ from, to }: { from: WorkflowVersion; to: WorkflowVersion }) {
  const parts = useMemo(() => diffLines(definitionText(from), definitionText(to)), [from, to]);
  const changed = parts.some((p) => p.added || p.removed);
  if (!changed) return <p className="text-sm text-slate-600">The two versions have the same definition.</p>;
  return (
    <pre
      tabIndex={0}
      aria-label={`Changes from version ${from.version} to version ${to.version}`}
      className="max-h-[32rem] overflow-auto rounded-md bg-white font-mono text-xs leading-relaxed ring-1 ring-slate-200"
    >
      {parts.map((part, index) =>
        part.value
          .replace(/\n$/, "")
          .split("\n")
          .map((line, lineIndex) => (
            <div
              key={`${index}:${lineIndex}`}
              className={clsx(
                "px-3 whitespace-pre-wrap",
                part.added && "bg-emerald-50 text-emerald-900",
                part.removed && "bg-red-50 text-red-900",
                !part.added && !part.removed && "text-slate-700",
              )}
            >
              <span aria-hidden="true" className="mr-2 inline-block w-3 select-none">
                {part.added ? "+" : part.removed ? "−" : " "}
              </span>
              {part.added && <span className="sr-only">added: </span>}
              {part.removed && <span className="sr-only">removed: </span>}
              {line}
            </div>
          )),
      )}
    </pre>
  );
}
