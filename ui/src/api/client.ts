/**
 * The typed API client: ``openapi-fetch`` over the types ``openapi-typescript`` generates from
 * the server's own OpenAPI document (``ui/openapi.json`` → ``schema.d.ts``; ``npm run api``).
 *
 * A middleware adds the signed-in credential and the read-your-writes position to every
 * request, remembers the position of every write, and handles a refused credential: a
 * signed-in user's access token is refreshed (before it expires, and once more on a 401, when
 * the request is sent again); any other refusal of the credential it added (a revoked or
 * expired key, a session that is over) signs out. A request that carries its own credential
 * (a sign-in attempt) is never retried and never signs anyone out.
 */
import createClient, { type Middleware } from "openapi-fetch";
import { currentCredential, headersFor, signOut } from "../auth/credential";
import { freshCredential, renewBearer } from "../auth/tokens";
import { ApiError } from "./errors";
import { MIN_POSITION_HEADER, POSITION_HEADER, highestPosition, sawPosition } from "./positions";
import type { paths } from "./schema";

/** Copies of the requests sent with the signed-in credential, to send again after a refresh. */
const ours = new Map<string, Request>();

function withCredential(request: Request, headers: Record<string, string>): Request {
  for (const [name, value] of Object.entries(headers)) request.headers.set(name, value);
  return request;
}

const session: Middleware = {
  async onRequest({ request, id }) {
    if (!request.headers.has("X-API-Key") && !request.headers.has("Authorization")) {
      const credential = await freshCredential();
      if (credential !== null) {
        withCredential(request, headersFor(credential));
        ours.set(id, request.clone());
      }
    }
    const position = highestPosition();
    if (position > 0 && request.method === "GET" && !request.headers.has(MIN_POSITION_HEADER)) {
      request.headers.set(MIN_POSITION_HEADER, String(position));
    }
    return request;
  },
  async onResponse({ request, response, id }) {
    const copy = ours.get(id);
    ours.delete(id);
    sawPosition(response.headers.get(POSITION_HEADER));
    const credential = currentCredential();
    if (response.status !== 401 || copy === undefined || credential === null) return response;
    if (credential.kind === "bearer") {
      const sent = request.headers.get("Authorization")?.replace(/^Bearer /, "") ?? "";
      const renewed = await renewBearer(sent);
      if (renewed === null) return response; // refused: signed out; unreachable: as it is
      const again = await globalThis.fetch(withCredential(copy, headersFor(renewed)));
      sawPosition(again.headers.get(POSITION_HEADER));
      if (again.status === 401 && currentCredential()?.kind === "bearer") signOut();
      return again;
    }
    const usedCurrent = Object.entries(headersFor(credential)).every(
      ([k, v]) => request.headers.get(k) === v,
    );
    if (usedCurrent) signOut();
    return response;
  },
  onError({ id }) {
    ours.delete(id);
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
