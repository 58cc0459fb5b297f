/**
 * A signed-in user's session (ADR 0018): OAuth2's password grant at ``/api/v1/auth/token``
 * gives a short-lived access token (sent as ``Authorization: Bearer``) and a refresh token,
 * which the refresh grant exchanges, once, for new ones.
 *
 * - Before a request, an access token that expires within ``REFRESH_MARGIN_MS`` is refreshed
 *   first (``freshCredential``); a 401 to a request that carried it refreshes it and the client
 *   tries once more (``renewBearer``).
 * - One refresh at a time, for the whole browser: a refresh token used twice ends the session,
 *   so tabs sharing a remembered sign-in take a Web Lock and adopt a token another tab got.
 * - A refresh the server refuses ends the sign-in here (back to the sign-in page); one that
 *   could not reach the server keeps the token, which may still be good.
 * - Signing out ends the session on the server (``/api/v1/auth/logout``), then here.
 */
import { ApiError } from "../api/errors";
import {
  type Credential,
  currentCredential,
  headersFor,
  replaceCredential,
  signOut,
  storedCredential,
} from "./credential";

export const TOKEN_PATH = "/api/v1/auth/token";
export const LOGOUT_PATH = "/api/v1/auth/logout";
/** Refresh this long before the access token expires (it lasts 15 minutes by default). */
export const REFRESH_MARGIN_MS = 60_000;
const LOCK = "flowledger.refresh";

type Bearer = Extract<Credential, { kind: "bearer" }>;

/** The token endpoint's answer (RFC 6749 §5.1). */
interface TokenAnswer {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token: string;
}

function url(path: string): string {
  return new URL(path, window.location.origin).toString();
}

async function tokenRequest(form: Record<string, string>): Promise<Response> {
  return globalThis.fetch(
    new Request(url(TOKEN_PATH), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(form).toString(),
    }),
  );
}

function bearerOf(answer: TokenAnswer, now: number): Bearer {
  return {
    kind: "bearer",
    token: answer.access_token,
    refreshToken: answer.refresh_token,
    expiresAt: now + answer.expires_in * 1000,
  };
}

/** Signs in with an email and a password; throws a readable error when refused. */
export async function passwordGrant(email: string, password: string): Promise<Credential> {
  const response = await tokenRequest({ grant_type: "password", username: email, password });
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 400) throw new Error("The email or the password is not right.");
    throw new ApiError(response.status, body);
  }
  return bearerOf(body as TokenAnswer, Date.now());
}

/** Whether ``credential`` is a bearer token that expires within the margin. */
export function expiresSoon(credential: Credential | null, now = Date.now()): boolean {
  return (
    credential?.kind === "bearer" &&
    credential.refreshToken !== undefined &&
    credential.expiresAt !== undefined &&
    credential.expiresAt - now <= REFRESH_MARGIN_MS
  );
}

/** The credential to send now: a bearer token about to expire is refreshed first. */
export async function freshCredential(): Promise<Credential | null> {
  const credential = currentCredential();
  if (credential?.kind !== "bearer" || !expiresSoon(credential)) return credential;
  return (await renewBearer(credential.token)) ?? currentCredential();
}

let renewing: Promise<Bearer | null> | null = null;

/**
 * A bearer credential newer than ``staleToken``: another request's (or tab's) refresh if there
 * was one, else a refresh of our own. ``null`` when there is none: signed out if the server
 * refused the refresh, still signed in with the old token if it could not be reached.
 */
export function renewBearer(staleToken: string): Promise<Bearer | null> {
  const held = currentCredential();
  if (held?.kind === "bearer" && held.token !== staleToken) return Promise.resolve(held);
  renewing ??= withLock(() => refresh(staleToken)).finally(() => {
    renewing = null;
  });
  return renewing;
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  return locks ? locks.request(LOCK, work) : work();
}

async function refresh(staleToken: string): Promise<Bearer | null> {
  const stored = storedCredential() ?? currentCredential();
  if (stored?.kind !== "bearer") return null; // signed out meanwhile
  if (stored.token !== staleToken) {
    replaceCredential(stored); // another tab refreshed it
    return stored;
  }
  if (stored.refreshToken === undefined) {
    signOut();
    return null;
  }
  let response: Response;
  try {
    response = await tokenRequest({ grant_type: "refresh_token", refresh_token: stored.refreshToken });
  } catch {
    return null; // unreachable: keep the token, the next request tries again
  }
  if (response.status === 400 || response.status === 401) {
    signOut(); // the session is over (ended, expired, or the user disabled)
    return null;
  }
  if (!response.ok) return null;
  const renewed = bearerOf((await response.json()) as TokenAnswer, Date.now());
  replaceCredential(renewed);
  return renewed;
}

/** Signs out: ends a signed-in user's session on the server, then forgets the credential. */
export async function endSession(): Promise<void> {
  try {
    const credential = await freshCredential(); // an expired token could not sign out
    if (credential?.kind === "bearer") {
      await globalThis.fetch(
        new Request(url(LOGOUT_PATH), { method: "POST", headers: headersFor(credential) }),
      );
    }
  } catch {
    // Unreachable: the access token expires by itself; the refresh token is forgotten below.
  } finally {
    signOut();
  }
}
