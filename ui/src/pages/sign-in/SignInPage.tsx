import { useQueryClient } from "@tanstack/react-query";
import { clsx } from "clsx";
import { useState } from "react";
import { Navigate, useNavigate, useSearchParams } from "react-router";
import { type Credential, signIn } from "../../auth/credential";
import { useCredential } from "../../auth/session";
import { signInMethods } from "../../auth/signInMethods";

function safeNext(next: string | null): string {
  // Only paths inside the app: never an absolute URL someone put in a link.
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/dashboard";
}

export default function SignInPage() {
  const credential = useCredential();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const queries = useQueryClient();
  const next = safeNext(params.get("next"));
  const [methodId, setMethodId] = useState(signInMethods[0]!.id);
  const method = signInMethods.find((m) => m.id === methodId) ?? signInMethods[0]!;

  if (credential !== null) return <Navigate to={next} replace />;

  const onSignedIn = (credential: Credential, remember: boolean) => {
    queries.clear();
    signIn(credential, remember);
    navigate(next, { replace: true });
  };

  return (
    <main className="flex min-h-screen items-center justify-center bg-gradient-to-br from-indigo-50 via-slate-50 to-sky-50 px-4">
      <div className="w-full max-w-sm">
        <div className="mb-6 flex items-center justify-center gap-2">
          <img src="/ui/favicon.svg" alt="" className="size-9" />
          <span className="text-2xl font-semibold tracking-tight text-slate-900">flowledger</span>
        </div>
        <div className="rounded-xl bg-white p-6 shadow-md ring-1 ring-slate-200">
          <h1 className="mb-4 text-lg font-semibold text-slate-900">Sign in</h1>
          {/* Toggle buttons rather than tabs: a tab panel is labelled by its tab, and the tab
              "API key" would then share its name with the field "API key". */}
          <div role="group" aria-label="How to sign in" className="mb-4 grid grid-cols-2 gap-1 rounded-lg bg-slate-100 p-1">
            {signInMethods.map((m) => (
              <button
                key={m.id}
                type="button"
                aria-pressed={m.id === method.id}
                onClick={() => setMethodId(m.id)}
                className={clsx(
                  "rounded-md px-3 py-1.5 text-sm font-medium",
                  m.id === method.id ? "bg-white text-indigo-800 shadow-sm" : "text-slate-700 hover:text-slate-900",
                )}
              >
                {m.label}
              </button>
            ))}
          </div>
          <method.Form key={method.id} onSignedIn={onSignedIn} />
        </div>
        <p className="mt-4 text-center text-xs text-slate-600">
          The API itself is documented at <a className="underline" href="/docs">/docs</a>.
        </p>
      </div>
    </main>
  );
}
