/**
 * The ways to sign in, each a form that produces a ``Credential``: a user's email and password
 * (the first, shown unless the person picks another) and an API key. A new way is one more
 * entry here with its form.
 */
import { KeyRound, LogIn } from "lucide-react";
import { type ComponentType, type FormEvent, useState } from "react";
import { api } from "../api/client";
import { ApiError, describeError } from "../api/errors";
import { Button } from "../components/Button";
import { Field, TextInput } from "../components/Field";
import { type Credential, headersFor } from "./credential";
import { passwordGrant } from "./tokens";

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

function Remember({ checked, onChange }: { checked: boolean; onChange: (value: boolean) => void }) {
  return (
    <label className="flex items-center gap-2 text-sm text-slate-800">
      <input
        type="checkbox"
        className="size-4 rounded border-slate-400 text-indigo-700"
        checked={checked}
        onChange={(e) => onChange(e.target.checked)}
      />
      Remember on this device
    </label>
  );
}

function PasswordForm({ onSignedIn }: SignInFormProps) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!email.trim() || !password) {
      setError("Enter your email and your password.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await passwordGrant(email.trim(), password), remember);
    } catch (refused) {
      setError(describeError(refused));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} className="space-y-4" noValidate>
      <Field label="Email">
        {(props) => (
          <TextInput
            {...props}
            name="email"
            type="email"
            autoComplete="username"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            autoFocus
          />
        )}
      </Field>
      <Field
        label="Password"
        hint={
          <>
            <code>flowledger dev</code> prints the password of <code>admin@localhost</code> and keeps it in{" "}
            <code>.flowledger/admin-password</code>.
          </>
        }
        error={error}
      >
        {(props) => (
          <TextInput
            {...props}
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        )}
      </Field>
      <Remember checked={remember} onChange={setRemember} />
      <Button type="submit" variant="primary" busy={busy} className="w-full">
        <LogIn aria-hidden="true" className="size-4" />
        {busy ? "Signing in…" : "Sign in"}
      </Button>
    </form>
  );
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
      <Remember checked={remember} onChange={setRemember} />
      <Button type="submit" variant="primary" busy={busy} className="w-full">
        <KeyRound aria-hidden="true" className="size-4" />
        {busy ? "Signing in…" : "Sign in"}
      </Button>
    </form>
  );
}

export const signInMethods: SignInMethod[] = [
  { id: "password", label: "Password", Form: PasswordForm },
  { id: "api-key", label: "API key", Form: ApiKeyForm },
];
