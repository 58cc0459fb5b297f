import { useCallback, useMemo } from "react";
import { useSearchParams } from "react-router";

/**
 * A list's filters, sorting and page kept in the address (``?status=FAILED&page=2``), so that
 * a view can be bookmarked, shared and returned to with the back button. Empty values are left
 * out; changing anything but the page goes back to page 1.
 */
export function useSearchState<T extends Record<string, string>>(defaults: T) {
  const [params, setParams] = useSearchParams();
  const values = useMemo(() => {
    const out: Record<string, string> = { ...defaults };
    for (const key of Object.keys(defaults)) {
      const value = params.get(key);
      if (value !== null) out[key] = value;
    }
    return out as T;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [params]);

  const update = useCallback(
    (changes: Partial<T>) => {
      setParams(
        (current) => {
          const next = new URLSearchParams(current);
          for (const [key, value] of Object.entries(changes)) {
            if (value === undefined || value === "" || value === defaults[key]) next.delete(key);
            else next.set(key, String(value));
          }
          if (!("page" in changes)) next.delete("page");
          return next;
        },
        { replace: true },
      );
    },
    [defaults, setParams],
  );
  return [values, update] as const;
}

/** The query parameters to send: empty filters left out, numbers as numbers. */
export function queryOf(values: Record<string, string>, numeric: string[] = ["page", "page_size"]) {
  const out: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === "") continue;
    out[key] = numeric.includes(key) ? Number(value) : value;
  }
  return out;
}
