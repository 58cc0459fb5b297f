import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { type StreamState, followStream } from "./eventStream";

/**
 * Keeps every list of runs fresh from the event stream of runs: a run requested, a step done,
 * a run ended refreshes the lists (once per burst). Where the stream is refused (with
 * per-workflow grants on, only admins may follow every event) the lists poll instead; the
 * returned state tells the caller which.
 */
export function useLiveRuns(): StreamState {
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  const pending = useRef<number | null>(null);

  useEffect(() => {
    const refresh = () => {
      pending.current = null;
      void client.invalidateQueries({ queryKey: ["runs", "list"] });
    };
    const close = followStream("/api/v1/events/stream?aggregate_type=run", {
      onState: (next) => {
        setState(next);
        if (next === "live") refresh(); // what happened before the stream opened
      },
      onEnvelope: () => {
        if (pending.current === null) pending.current = window.setTimeout(refresh, 250);
      },
    });
    return () => {
      close();
      if (pending.current !== null) window.clearTimeout(pending.current);
    };
  }, [client]);

  return state;
}

/** How often a list of runs polls: rarely while the stream keeps it fresh. */
export function pollingInterval(state: StreamState): number {
  return state === "live" ? 30_000 : 5_000;
}
