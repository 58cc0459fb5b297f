import { clsx } from "clsx";
import { TONE_CLASSES, statusLook } from "../status/statuses";

/** A status as a coloured label; the text (not only the colour) says which it is. */
export function StatusBadge({ status, className }: { status: string; className?: string }) {
  const look = statusLook(status);
  const tone = TONE_CLASSES[look.tone];
  return (
    <span
      data-status={status}
      className={clsx(
        "inline-flex items-center gap-1.5 rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset",
        tone.badge,
        className,
      )}
    >
      <span aria-hidden="true" className={clsx("size-1.5 rounded-full", tone.dot)} />
      {look.label}
    </span>
  );
}
