import { useQueryClient } from "@tanstack/react-query";
import { Navigate, useNavigate, useSearchParams } from "react-router";
import { type Credential, signIn } from "../../auth/credential";
import { useCredential } from "../../auth/session";
import { signInMethods } from "../../auth/signInMethods";
import { Tabs } from "../../components/Tabs";

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

  if (credential !== null) return <Navigate to={next} replace />;

  const onSignedIn = (credential: Credential, remember: boolean) => {
    queries.clear();
    signIn(credential, remember);
    navigate(next, { replace: true });
  };
  const forms = signInMethods.map((method) => ({
    id: method.id,
    label: method.label,
    content: <method.Form onSignedIn={onSignedIn} />,
  }));

  return (
    <main className="flex min-h-screen items-center justify-center bg-gradient-to-br from-indigo-50 via-slate-50 to-sky-50 px-4">
      <div className="w-full max-w-sm">
        <div className="mb-6 flex items-center justify-center gap-2">
          <img src="/ui/favicon.svg" alt="" className="size-9" />
          <span className="text-2xl font-semibold tracking-tight text-slate-900">flowledger</span>
        </div>
        <div className="rounded-xl bg-white p-6 shadow-md ring-1 ring-slate-200">
          <h1 className="mb-4 text-lg font-semibold text-slate-900">Sign in</h1>
          {forms.length === 1 ? forms[0]!.content : <Tabs label="How to sign in" tabs={forms} />}
        </div>
        <p className="mt-4 text-center text-xs text-slate-600">
          The API itself is documented at <a className="underline" href="/docs">/docs</a>.
        </p>
      </div>
    </main>
  );
}
