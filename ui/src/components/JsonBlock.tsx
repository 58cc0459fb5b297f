import { clsx } from "clsx";

/** A JSON value, pretty-printed, readable and scrollable. */
export function JsonBlock({
  value,
  label,
  className,
}: {
  value: unknown;
  label?: string;
  className?: string;
}) {
  const text = value === undefined ? "—" : JSON.stringify(value, null, 2);
  return (
    <pre
      aria-label={label}
      tabIndex={0}
      className={clsx(
        "max-h-80 overflow-auto rounded-md bg-slate-900 p-3 font-mono text-xs leading-relaxed text-slate-100",
        className,
      )}
    >
      {text}
    </pre>
  );
}
