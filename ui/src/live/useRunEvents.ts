import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { type Envelope, type StreamState, followStream } from "./eventStream";

/**
 * Keeps a run's queries fresh from its event stream: each event (a step started, an attempt
 * failed, the run ended...) refreshes the run, its steps and its log. The refreshed reads ask
 * for the event's position (read your writes), so they never show the state before the event.
 */
export function useRunEvents(runId: string): { state: StreamState; last: Envelope | null } {
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  const [last, setLast] = useState<Envelope | null>(null);
  const pending = useRef<number | null>(null);

  useEffect(() => {
    const refresh = () => {
      pending.current = null;
      void client.invalidateQueries({ queryKey: ["runs", runId] });
    };
    const close = followStream(`/api/v1/runs/${encodeURIComponent(runId)}/events/stream`, {
      onState: (next) => {
        setState(next);
        // What happened between the first read and the stream opening is in no message:
        // read again once the stream is open, and nothing falls in between.
        if (next === "live") refresh();
      },
      onEnvelope: (envelope) => {
        setLast(envelope);
        // Events come in bursts (a step ends, the next starts): refresh once per burst.
        if (pending.current === null) pending.current = window.setTimeout(refresh, 100);
      },
    });
    return () => {
      close();
      if (pending.current !== null) window.clearTimeout(pending.current);
    };
  }, [client, runId]);

  return { state, last };
}
