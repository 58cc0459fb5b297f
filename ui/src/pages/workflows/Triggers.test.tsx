import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { signIn, signOut } from "../../auth/credential";
import { Triggers } from "./Triggers";

const base = {
  workflow_id: "w1",
  workflow_version: 1,
  fired_count: 0,
  failed_count: 0,
  version: 1,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};
const schedule = {
  ...base,
  id: "t1",
  key: "nightly",
  type: "schedule",
  status: "active",
  config: { type: "schedule", cron: "0 3 * * *", timezone: "Europe/Paris" },
  next_fire_times: ["2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"],
};
const hook = { ...base, id: "t2", key: "orders", type: "webhook", status: "paused", config: {}, url_path: "/hooks/orders", method: "POST" };

function page(items: unknown[]) {
  return new Response(JSON.stringify({ items, total: items.length, page: 1, page_size: 100, total_pages: 1 }), {
    status: 200,
    headers: { "content-type": "application/json" },
  });
}

describe("a workflow's triggers", () => {
  beforeEach(() => signIn({ kind: "api-key", secret: "flk_x" }, false));
  afterEach(() => signOut());

  it("lists each with its next fire times or its path, and pauses one for a manager", async () => {
    const asked: string[] = [];
    vi.stubGlobal("fetch", async (request: Request) => {
      const url = new URL(request.url);
      asked.push(`${request.method} ${url.pathname}${url.search}`);
      return request.method === "POST" ? new Response(JSON.stringify({ ...schedule, status: "paused" }), { status: 200, headers: { "content-type": "application/json" } }) : page([schedule, hook]);
    });
    render(
      <QueryClientProvider client={new QueryClient()}>
        <Triggers workflowId="w1" canManage />
      </QueryClientProvider>,
    );

    const nightly = (await screen.findByText("nightly")).closest("li")!;
    expect(within(nightly).getByText("cron 0 3 * * * (Europe/Paris)")).toBeInTheDocument();
    const times = within(nightly).getByRole("list", { name: "Next fire times of nightly" });
    expect(within(times).getAllByRole("listitem").map((li) => li.getAttribute("data-next-fire"))).toEqual(schedule.next_fire_times);
    const orders = screen.getByText("orders").closest("li")!;
    expect(within(orders).getByText("POST /hooks/orders")).toBeInTheDocument();
    expect(within(orders).getByRole("button", { name: "Resume" })).toBeInTheDocument();
    expect(asked[0]).toBe("GET /api/v1/triggers?workflow_id=w1&page_size=100");

    await userEvent.setup().click(within(nightly).getByRole("button", { name: "Pause" }));
    expect(asked).toContain("POST /api/v1/triggers/t1/pause");
  });

  it("offers no pause to those who may not manage", async () => {
    vi.stubGlobal("fetch", async () => page([schedule]));
    render(
      <QueryClientProvider client={new QueryClient()}>
        <Triggers workflowId="w1" canManage={false} />
      </QueryClientProvider>,
    );
    expect(await screen.findByText("nightly")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Pause" })).toBeNull();
  });
});
