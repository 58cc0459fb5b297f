/**
 * The credential the dashboard calls the API with, kept in the browser's storage.
 *
 * Each sign-in method produces a ``Credential``; only ``headersFor`` knows how it travels.
 * A new method adds a kind here and a form in ``signInMethods.tsx``. The credential lives in
 * ``sessionStorage`` (this tab) unless the user asks to be remembered on this device
 * (``localStorage``); a remembered one is shared by the device's tabs, which follow each
 * other's refreshes and sign-outs (``storage`` events). A bearer token is a signed-in user's
 * session (ADR 0018): ``tokens.ts`` refreshes it and ends it.
 */
export type Credential =
  | { kind: "api-key"; secret: string }
  | {
      kind: "bearer";
      token: string;
      refreshToken?: string;
      /** When the access token expires, in milliseconds since the epoch. */
      expiresAt?: number;
    };

const STORAGE_KEY = "flowledger.credential";
type Listener = () => void;
const listeners = new Set<Listener>();
let current: Credential | null = load();

function load(): Credential | null {
  for (const storage of stores()) {
    const raw = storage.getItem(STORAGE_KEY);
    if (!raw) continue;
    try {
      const parsed = JSON.parse(raw) as Credential;
      if (parsed.kind === "api-key" || parsed.kind === "bearer") return parsed;
    } catch {
      storage.removeItem(STORAGE_KEY);
    }
  }
  return null;
}

function stores(): Storage[] {
  return typeof window === "undefined" ? [] : [window.sessionStorage, window.localStorage];
}

export function headersFor(credential: Credential | null): Record<string, string> {
  if (credential === null) return {};
  return credential.kind === "api-key"
    ? { "X-API-Key": credential.secret }
    : { Authorization: `Bearer ${credential.token}` };
}

export function currentCredential(): Credential | null {
  return current;
}

export function isRemembered(): boolean {
  return typeof window !== "undefined" && window.localStorage.getItem(STORAGE_KEY) !== null;
}

export function signIn(credential: Credential, remember: boolean): void {
  for (const storage of stores()) storage.removeItem(STORAGE_KEY);
  (remember ? window.localStorage : window.sessionStorage).setItem(
    STORAGE_KEY,
    JSON.stringify(credential),
  );
  current = credential;
  listeners.forEach((listener) => listener());
}

/** A refreshed credential, kept where the one it replaces was kept. */
export function replaceCredential(credential: Credential): void {
  signIn(credential, isRemembered());
}

/** The credential as the browser's storage has it now (another tab may have refreshed it). */
export function storedCredential(): Credential | null {
  return load();
}

export function signOut(): void {
  for (const storage of stores()) storage.removeItem(STORAGE_KEY);
  current = null;
  listeners.forEach((listener) => listener());
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

if (typeof window !== "undefined") {
  // Another tab of a remembered sign-in refreshed its token or signed out.
  window.addEventListener("storage", (event) => {
    if (event.key !== STORAGE_KEY && event.key !== null) return;
    current = load();
    listeners.forEach((listener) => listener());
  });
}
