import { clsx } from "clsx";
import { ArrowDown, ArrowUp, ArrowUpDown } from "lucide-react";
import type { ReactNode, ThHTMLAttributes } from "react";

/** A table that scrolls sideways on a phone instead of squeezing its columns. */
export function Table({ caption, children }: { caption: string; children: ReactNode }) {
  return (
    <div className="-mx-4 overflow-x-auto sm:mx-0">
      <table className="min-w-full divide-y divide-slate-200 text-left text-sm">
        <caption className="sr-only">{caption}</caption>
        {children}
      </table>
    </div>
  );
}

export function Th({ className, ...rest }: ThHTMLAttributes<HTMLTableCellElement>) {
  return (
    <th
      scope="col"
      className={clsx(
        "px-3 py-2 text-xs font-semibold tracking-wide whitespace-nowrap text-slate-600 uppercase first:pl-4 sm:first:pl-3",
        className,
      )}
      {...rest}
    />
  );
}

export function Td({ className, ...rest }: ThHTMLAttributes<HTMLTableCellElement>) {
  return <td className={clsx("px-3 py-2 align-top first:pl-4 sm:first:pl-3", className)} {...rest} />;
}

/** A column header that sorts the list by its field (``aria-sort`` tells which way). */
export function SortableTh({
  field,
  label,
  sort,
  order,
  onSort,
}: {
  field: string;
  label: string;
  sort: string;
  order: "asc" | "desc";
  onSort: (field: string, order: "asc" | "desc") => void;
}) {
  const active = sort === field;
  const next = active && order === "desc" ? "asc" : "desc";
  const Icon = !active ? ArrowUpDown : order === "asc" ? ArrowUp : ArrowDown;
  return (
    <Th aria-sort={active ? (order === "asc" ? "ascending" : "descending") : "none"}>
      <button
        type="button"
        className="inline-flex items-center gap-1 uppercase hover:text-slate-900"
        onClick={() => onSort(field, next)}
      >
        {label}
        <Icon aria-hidden="true" className="size-3.5" />
        <span className="sr-only">, sort {next === "asc" ? "ascending" : "descending"}</span>
      </button>
    </Th>
  );
}
