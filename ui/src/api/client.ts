/**
 * The typed API client: ``openapi-fetch`` over the types ``openapi-typescript`` generates from
 * the server's own OpenAPI document (``ui/openapi.json`` → ``schema.d.ts``; ``npm run api``).
 *
 * A middleware adds the signed-in credential and the read-your-writes position to every
 * request, remembers the position of every write, and signs out when the server refuses the
 * credential (a revoked or expired key).
 */
import createClient, { type Middleware } from "openapi-fetch";
import { currentCredential, headersFor, signOut } from "../auth/credential";
import { ApiError } from "./errors";
import { MIN_POSITION_HEADER, POSITION_HEADER, highestPosition, sawPosition } from "./positions";
import type { paths } from "./schema";

const session: Middleware = {
  onRequest({ request }) {
    const credential = currentCredential();
    if (!request.headers.has("X-API-Key") && !request.headers.has("Authorization")) {
      for (const [name, value] of Object.entries(headersFor(credential))) {
        request.headers.set(name, value);
      }
    }
    const position = highestPosition();
    if (position > 0 && request.method === "GET" && !request.headers.has(MIN_POSITION_HEADER)) {
      request.headers.set(MIN_POSITION_HEADER, String(position));
    }
    return request;
  },
  onResponse({ request, response }) {
    sawPosition(response.headers.get(POSITION_HEADER));
    const credential = currentCredential();
    const sent = headersFor(credential);
    const usedCurrent = Object.entries(sent).some(([k, v]) => request.headers.get(k) === v);
    if (response.status === 401 && credential !== null && usedCurrent) signOut();
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: window.location.origin,
  // Looked up at each call, so that tests can stand in for the server.
  fetch: (request) => globalThis.fetch(request),
});
api.use(session);

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful answer; an ``ApiError`` otherwise (for TanStack Query). */
export function unwrap<T>(answer: Answer<T>): T {
  if (answer.error !== undefined || !answer.response.ok) {
    throw new ApiError(answer.response.status, answer.error);
  }
  return answer.data as T;
}
