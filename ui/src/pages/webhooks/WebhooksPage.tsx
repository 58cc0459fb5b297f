import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Plus } from "lucide-react";
import { type FormEvent, useState } from "react";
import { Link } from "react-router";
import { api, unwrap } from "../../api/client";
import { Button } from "../../components/Button";
import { Card, PageHeader } from "../../components/Card";
import { ConfirmButton, Dialog } from "../../components/Dialog";
import { Field, TextInput } from "../../components/Field";
import { EmptyState, ErrorNotice, Loading } from "../../components/Notice";
import { Pagination } from "../../components/Pagination";
import { StatusBadge } from "../../components/StatusBadge";
import { Table, Td, Th } from "../../components/Table";
import { RelativeTime } from "../../components/Time";

function CreateWebhook() {
  const [open, setOpen] = useState(false);
  const [url, setUrl] = useState("");
  const [secret, setSecret] = useState("");
  const [types, setTypes] = useState("");
  const queries = useQueryClient();
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/webhooks", {
          body: {
            url: url.trim(),
            secret,
            event_types: types.split(",").map((t) => t.trim()).filter(Boolean),
          },
        }),
      ),
    onSuccess: () => {
      setOpen(false);
      setUrl("");
      setSecret("");
      void queries.invalidateQueries({ queryKey: ["webhooks"] });
    },
  });
  return (
    <>
      <Button variant="primary" onClick={() => setOpen(true)}>
        <Plus aria-hidden="true" className="size-4" /> New webhook
      </Button>
      <Dialog open={open} onOpenChange={setOpen} title="New webhook" description="Each matching event is POSTed to the URL, signed with the secret.">
        <form
          className="space-y-4"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Field label="URL">
            {(props) => <TextInput {...props} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} autoFocus />}
          </Field>
          <Field label="Secret" hint="Used to sign each delivery (HMAC-SHA256); never shown again.">
            {(props) => <TextInput {...props} type="password" required value={secret} onChange={(e) => setSecret(e.target.value)} />}
          </Field>
          <Field label="Event types" hint="Comma-separated, globs allowed (Run*, AgentDeleted). Empty: every event.">
            {(props) => <TextInput {...props} value={types} onChange={(e) => setTypes(e.target.value)} />}
          </Field>
          {create.isError && <ErrorNotice error={create.error} />}
          <div className="flex justify-end gap-2">
            <Button onClick={() => setOpen(false)}>Cancel</Button>
            <Button type="submit" variant="primary" busy={create.isPending}>Create webhook</Button>
          </div>
        </form>
      </Dialog>
    </>
  );
}

export default function WebhooksPage() {
  const [page, setPage] = useState(1);
  const queries = useQueryClient();
  const hooks = useQuery({
    queryKey: ["webhooks", "list", page],
    queryFn: async () => unwrap(await api.GET("/api/v1/webhooks", { params: { query: { page, page_size: 20 } } })),
    placeholderData: keepPreviousData,
  });
  const remove = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.DELETE("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: id } } })),
    onSuccess: () => queries.invalidateQueries({ queryKey: ["webhooks"] }),
  });
  return (
    <div className="space-y-4">
      <PageHeader title="Webhooks" subtitle="URLs that receive events as signed POSTs, with retries." actions={<CreateWebhook />} />
      {remove.isError && <ErrorNotice error={remove.error} />}
      <Card>
        {hooks.isPending ? (
          <Loading what="Loading webhooks" />
        ) : hooks.isError ? (
          <ErrorNotice error={hooks.error} />
        ) : hooks.data.items.length === 0 ? (
          <EmptyState>No webhook yet.</EmptyState>
        ) : (
          <>
            <Table caption="Webhooks">
              <thead>
                <tr>
                  <Th>URL</Th>
                  <Th>Events</Th>
                  <Th>Status</Th>
                  <Th className="hidden md:table-cell">Created</Th>
                  <Th><span className="sr-only">Actions</span></Th>
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {hooks.data.items.map((hook) => (
                  <tr key={hook.id}>
                    <Td>
                      <Link to={`/webhooks/${hook.id}`} className="font-mono text-xs break-all text-indigo-800 hover:underline">
                        {hook.url}
                      </Link>
                    </Td>
                    <Td className="text-xs">{hook.event_types.length ? hook.event_types.join(", ") : "every event"}</Td>
                    <Td><StatusBadge status={hook.status} /></Td>
                    <Td className="hidden md:table-cell"><RelativeTime at={hook.created_at} /></Td>
                    <Td className="text-right">
                      {hook.status === "active" && (
                        <ConfirmButton
                          size="sm"
                          variant="danger"
                          title="Delete this webhook?"
                          description="Its pending deliveries are cancelled."
                          confirmLabel="Delete"
                          onConfirm={() => remove.mutate(hook.id)}
                        >
                          Delete
                        </ConfirmButton>
                      )}
                    </Td>
                  </tr>
                ))}
              </tbody>
            </Table>
            <Pagination page={hooks.data.page} totalPages={hooks.data.total_pages} total={hooks.data.total} onPage={setPage} />
          </>
        )}
      </Card>
    </div>
  );
}
