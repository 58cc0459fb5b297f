/**
 * The ways to sign in, each a form that produces a ``Credential``. A new way (a user's password,
 * once the API issues tokens) is one more entry here with its form.
 */
import { KeyRound } from "lucide-react";
import { type ComponentType, type FormEvent, useState } from "react";
import { api } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import { Button } from "../components/Button";
import { Field, TextInput } from "../components/Field";
import { type Credential, headersFor } from "./credential";

export interface SignInFormProps {
  /** Called with a credential the server accepted. */
  onSignedIn: (credential: Credential, remember: boolean) => void;
}

export interface SignInMethod {
  id: string;
  label: string;
  Form: ComponentType<SignInFormProps>;
}

/** Asks the server who this credential is; throws a readable error when it is refused. */
export async function verify(credential: Credential): Promise<void> {
  const { response, error } = await api.GET("/api/v1/whoami", { headers: headersFor(credential) });
  if (!response.ok) {
    if (response.status === 401) throw new Error("The server refused this key: check it, or ask an admin for a new one.");
    throw new ApiError(response.status, error);
  }
}

function ApiKeyForm({ onSignedIn }: SignInFormProps) {
  const [secret, setSecret] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const credential: Credential = { kind: "api-key", secret: secret.trim() };
    if (!credential.secret) {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await verify(credential);
      onSignedIn(credential, remember);
    } catch (refused) {
      setError(describeError(refused));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} className="space-y-4" noValidate>
      <Field
        label="API key"
        hint={
          <>
            An admin creates keys on the API keys page; <code>flowledger dev</code> keeps its admin key in{" "}
            <code>.flowledger/admin-api-key</code>.
          </>
        }
        error={error}
      >
        {(props) => (
          <TextInput
            {...props}
            name="api-key"
            type="password"
            autoComplete="current-password"
            placeholder="flk_…"
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
            autoFocus
          />
        )}
      </Field>
      <label className="flex items-center gap-2 text-sm text-slate-800">
        <input
          type="checkbox"
          className="size-4 rounded border-slate-400 text-indigo-700"
          checked={remember}
          onChange={(e) => setRemember(e.target.checked)}
        />
        Remember on this device
      </label>
      <Button type="submit" variant="primary" busy={busy} className="w-full">
        <KeyRound aria-hidden="true" className="size-4" />
        {busy ? "Signing in…" : "Sign in"}
      </Button>
    </form>
  );
}

export const signInMethods: SignInMethod[] = [{ id: "api-key", label: "API key", Form: ApiKeyForm }];
