/**
 * Following a run live: the API's Server-Sent Events stream, read with the ``eventsource``
 * package over ``fetch`` so that the credential travels in its header (a browser's own
 * ``EventSource`` cannot send headers, and keys do not belong in URLs, where logs keep them).
 * It reconnects by itself and resumes with ``Last-Event-ID``, so nothing is missed.
 */
import { EventSource } from "eventsource";
import { headersFor } from "../auth/credential";
import { freshCredential } from "../auth/tokens";
import { sawPosition } from "../api/positions";

/** The envelope every event leaves the system in (DESIGN.md, "Contracts"). */
export interface Envelope {
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  aggregate_version: number;
  position: number;
  occurred_at: string;
  actor: string | null;
  data: Record<string, unknown>;
}

export type StreamState = "connecting" | "live" | "retrying" | "closed";

export interface StreamHandlers {
  onEnvelope: (envelope: Envelope) => void;
  onState?: (state: StreamState) => void;
}

export function parseEnvelope(data: string): Envelope | null {
  try {
    const parsed = JSON.parse(data) as Partial<Envelope>;
    if (typeof parsed.event_type !== "string" || typeof parsed.position !== "number") return null;
    return parsed as Envelope;
  } catch {
    return null;
  }
}

/** Open ``path`` (an ``/api/v1/.../events/stream``); returns the function that closes it. */
export function followStream(path: string, handlers: StreamHandlers): () => void {
  const source = new EventSource(new URL(path, window.location.origin), {
    // Each (re)connection sends the credential of the moment: a refreshed token after a refresh.
    fetch: async (url, init) =>
      fetch(url, { ...init, headers: { ...init.headers, ...headersFor(await freshCredential()) } }),
  });
  handlers.onState?.("connecting");
  source.addEventListener("open", () => handlers.onState?.("live"));
  source.addEventListener("error", () =>
    handlers.onState?.(source.readyState === EventSource.CLOSED ? "closed" : "retrying"),
  );
  source.addEventListener("message", (message) => {
    const envelope = parseEnvelope(message.data);
    if (envelope === null) return;
    sawPosition(envelope.position);
    handlers.onEnvelope(envelope);
  });
  return () => {
    source.close();
    handlers.onState?.("closed");
  };
}
