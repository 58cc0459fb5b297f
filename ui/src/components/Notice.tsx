import { clsx } from "clsx";
import type { ReactNode } from "react";
import { ApiError, describeError } from "../api/errors";

/** An error as a sentence, with the field errors of a 422 listed under it. */
export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  const fieldErrors = error instanceof ApiError ? error.errors : [];
  return (
    <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-900">
      <p className="font-medium">{title ?? describeError(error)}</p>
      {title && <p>{describeError(error)}</p>}
      {fieldErrors.length > 0 && (
        <ul className="mt-2 list-disc space-y-0.5 pl-5">
          {fieldErrors.map((e) => (
            <li key={`${e.location}:${e.field}:${e.message}`}>
              <code className="font-mono text-xs">{e.field}</code>: {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Notice({
  tone = "info",
  children,
}: {
  tone?: "info" | "success" | "warning";
  children: ReactNode;
}) {
  return (
    <div
      role="status"
      className={clsx(
        "rounded-md border p-3 text-sm",
        tone === "info" && "border-sky-300 bg-sky-50 text-sky-900",
        tone === "success" && "border-emerald-300 bg-emerald-50 text-emerald-900",
        tone === "warning" && "border-amber-300 bg-amber-50 text-amber-900",
      )}
    >
      {children}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p role="status" className="flex items-center gap-2 py-6 text-sm text-slate-600">
      <span
        aria-hidden="true"
        className="size-4 animate-spin rounded-full border-2 border-slate-300 border-t-indigo-600"
      />
      {what}…
    </p>
  );
}

export function EmptyState({ children }: { children: ReactNode }) {
  return <p className="py-8 text-center text-sm text-slate-600">{children}</p>;
}
