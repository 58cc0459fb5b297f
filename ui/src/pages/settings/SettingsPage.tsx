import { LogOut } from "lucide-react";
import { endSession } from "../../auth/tokens";
import { isRemembered } from "../../auth/credential";
import { useWhoAmI } from "../../auth/session";
import { Button } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { ErrorNotice, Loading } from "../../components/Notice";
import { DateTime } from "../../components/Time";

export default function SettingsPage() {
  const whoami = useWhoAmI();
  return (
    <div className="space-y-5">
      <PageHeader title="Settings" subtitle="Who you are signed in as, and how this browser keeps it." />
      <Card title="Signed in">
        {whoami.isPending ? (
          <Loading />
        ) : whoami.isError ? (
          <ErrorNotice error={whoami.error} />
        ) : (
          <dl className="grid gap-x-6 gap-y-2 text-sm sm:grid-cols-[max-content_1fr]">
            <dt className="font-medium text-slate-700">Actor</dt>
            <dd className="font-mono">{whoami.data.actor}</dd>
            <dt className="font-medium text-slate-700">Role</dt>
            <dd>{whoami.data.role}</dd>
            <dt className="font-medium text-slate-700">Permissions</dt>
            <dd>{whoami.data.permissions.join(", ")}</dd>
            <dt className="font-medium text-slate-700">Credential</dt>
            <dd>{whoami.data.credential.replace("_", " ")}</dd>
            {whoami.data.expires_at && (
              <>
                <dt className="font-medium text-slate-700">Expires</dt>
                <dd><DateTime at={whoami.data.expires_at} /></dd>
              </>
            )}
            <dt className="font-medium text-slate-700">Kept</dt>
            <dd>{isRemembered() ? "on this device, until you sign out" : "in this tab, until it closes"}</dd>
          </dl>
        )}
        <Button className="mt-4" onClick={() => void endSession()}>
          <LogOut aria-hidden="true" className="size-4" /> Sign out
        </Button>
      </Card>
      <Card title="The API">
        <p className="text-sm text-slate-700">
          Everything this dashboard shows comes from the HTTP API: <a className="text-indigo-800 underline" href="/docs">Swagger UI</a>,{" "}
          <a className="text-indigo-800 underline" href="/redoc">ReDoc</a>,{" "}
          <a className="text-indigo-800 underline" href="/openapi.json">the OpenAPI document</a>.
        </p>
      </Card>
    </div>
  );
}
