import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Copy, Plus } from "lucide-react";
import { type FormEvent, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { ApiKeyCreated } from "../../api/types";
import { Button } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { ConfirmButton, Dialog } from "../../components/Dialog";
import { Field, Select, TextInput } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading, Notice } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { StatusBadge } from "../../components/StatusBadge";
import { Table, Td, Th } from "../../components/Table";
import { DateTime, RelativeTime } from "../../components/Time";

const ROLES = ["viewer", "operator", "editor", "admin"] as const;

function CreateKey({ onCreated }: { onCreated: (key: ApiKeyCreated) => void }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [role, setRole] = useState<(typeof ROLES)[number]>("viewer");
  const [expires, setExpires] = useState("");
  const queries = useQueryClient();
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/api-keys", {
          body: { name: name.trim(), role, expires_at: expires ? new Date(expires).toISOString() : null },
        }),
      ),
    onSuccess: (key) => {
      setOpen(false);
      setName("");
      onCreated(key);
      void queries.invalidateQueries({ queryKey: ["api-keys"] });
    },
  });
  return (
    <>
      <Button variant="primary" onClick={() => setOpen(true)}>
        <Plus aria-hidden="true" className="size-4" /> New key
      </Button>
      <Dialog open={open} onOpenChange={setOpen} title="New API key" description="The secret is shown once, right after it is created.">
        <form
          className="space-y-4"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Field label="Name">
            {(props) => <TextInput {...props} required value={name} onChange={(e) => setName(e.target.value)} autoFocus />}
          </Field>
          <Field label="Role" hint="viewer reads; operator also runs; editor also changes agents and workflows; admin does everything.">
            {(props) => (
              <Select {...props} value={role} onChange={(e) => setRole(e.target.value as (typeof ROLES)[number])}>
                {ROLES.map((r) => (
                  <option key={r} value={r}>{r}</option>
                ))}
              </Select>
            )}
          </Field>
          <Field label="Expires" hint="Empty: never.">
            {(props) => <TextInput {...props} type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />}
          </Field>
          {create.isError && <ErrorNotice error={create.error} />}
          <div className="flex justify-end gap-2">
            <Button onClick={() => setOpen(false)}>Cancel</Button>
            <Button type="submit" variant="primary" busy={create.isPending}>Create key</Button>
          </div>
        </form>
      </Dialog>
    </>
  );
}

function SecretOnce({ created, onDone }: { created: ApiKeyCreated; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <Notice tone="success">
      <p className="font-semibold">Key “{created.name}” created. Copy its secret now: it will not be shown again.</p>
      <div className="mt-2 flex flex-wrap items-center gap-2">
        <code data-secret className="rounded bg-white px-2 py-1 font-mono text-sm break-all ring-1 ring-emerald-300">
          {created.key}
        </code>
        <Button
          size="sm"
          onClick={async () => {
            await navigator.clipboard?.writeText(created.key);
            setCopied(true);
          }}
        >
          <Copy aria-hidden="true" className="size-3.5" /> {copied ? "Copied" : "Copy"}
        </Button>
        <Button size="sm" variant="ghost" onClick={onDone}>Done</Button>
      </div>
    </Notice>
  );
}

export default function ApiKeysPage() {
  const [page, setPage] = useState(1);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const queries = useQueryClient();
  const keys = useQuery({
    queryKey: ["api-keys", page],
    queryFn: async () => unwrap(await api.GET("/api/v1/api-keys", { params: { query: { page, page_size: 20 } } })),
    placeholderData: keepPreviousData,
  });
  const revoke = useMutation({
    mutationFn: async (keyId: string) =>
      unwrap(await api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: keyId } } })),
    onSuccess: () => queries.invalidateQueries({ queryKey: ["api-keys"] }),
  });
  return (
    <div className="space-y-4">
      <PageHeader title="API keys" subtitle="Credentials for the API and this dashboard." actions={<CreateKey onCreated={setCreated} />} />
      {created && <SecretOnce created={created} onDone={() => setCreated(null)} />}
      {revoke.isError && <ErrorNotice error={revoke.error} title="The key was not revoked." />}
      <Card>
        {keys.isPending ? (
          <Loading what="Loading keys" />
        ) : keys.isError ? (
          <ErrorNotice error={keys.error} />
        ) : keys.data.items.length === 0 ? (
          <EmptyState>No key yet.</EmptyState>
        ) : (
          <>
            <Table caption="API keys">
              <thead>
                <tr>
                  <Th>Name</Th>
                  <Th>Prefix</Th>
                  <Th>Role</Th>
                  <Th>Status</Th>
                  <Th className="hidden md:table-cell">Created</Th>
                  <Th className="hidden md:table-cell">Expires</Th>
                  <Th><span className="sr-only">Actions</span></Th>
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {keys.data.items.map((key) => (
                  <tr key={key.id} data-key={key.name}>
                    <Td className="font-medium">{key.name}</Td>
                    <Td className="font-mono text-xs">{key.prefix}</Td>
                    <Td>{key.role}</Td>
                    <Td><StatusBadge status={key.status} /></Td>
                    <Td className="hidden md:table-cell"><RelativeTime at={key.created_at} /></Td>
                    <Td className="hidden md:table-cell">{key.expires_at ? <DateTime at={key.expires_at} /> : "never"}</Td>
                    <Td className="text-right">
                      {key.status === "active" && (
                        <ConfirmButton
                          size="sm"
                          variant="danger"
                          title={`Revoke “${key.name}”?`}
                          description="Every API process refuses it from now on. This cannot be undone."
                          confirmLabel="Revoke"
                          onConfirm={() => revoke.mutate(key.id)}
                        >
                          Revoke
                        </ConfirmButton>
                      )}
                    </Td>
                  </tr>
                ))}
              </tbody>
            </Table>
            <Pagination page={keys.data.page} totalPages={keys.data.total_pages} total={keys.data.total} onPage={setPage} />
          </>
        )}
      </Card>
    </div>
  );
}
