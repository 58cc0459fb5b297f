import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { RouterProvider, createMemoryRouter } from "react-router";
import { currentCredential, signOut } from "../../auth/credential";
import { RequireSignIn } from "../../auth/RequireSignIn";
import SignInPage from "./SignInPage";

function app(start: string) {
  const router = createMemoryRouter(
    [
      { path: "/sign-in", element: <SignInPage /> },
      { path: "/runs", element: <RequireSignIn><h1>Runs page</h1></RequireSignIn> },
      { path: "/dashboard", element: <RequireSignIn><h1>Overview page</h1></RequireSignIn> },
    ],
    { initialEntries: [start] },
  );
  render(
    <QueryClientProvider client={new QueryClient()}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return router;
}

describe("signing in", () => {
  afterEach(() => signOut());

  it("shows only the sign-in page until a key is accepted, then goes where the person was going", async () => {
    const keys: (string | null)[] = [];
    vi.stubGlobal("fetch", async (request: Request) => {
      keys.push(request.headers.get("X-API-Key"));
      const ok = request.headers.get("X-API-Key") === "flk_right";
      return new Response(JSON.stringify(ok ? { actor: "key:1", role: "viewer", credential: "api_key", permissions: ["read"] } : { detail: "no" }), {
        status: ok ? 200 : 401,
        headers: { "content-type": "application/json" },
      });
    });
    const router = app("/runs?status=FAILED");
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    expect(screen.queryByText("Runs page")).toBeNull();

    const user = userEvent.setup();
    expect(screen.getByRole("button", { name: "Password" })).toHaveAttribute("aria-pressed", "true");
    await user.click(screen.getByRole("button", { name: "API key" }));
    await user.type(screen.getByLabelText("API key"), "flk_wrong");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText(/The server refused this key/)).toBeInTheDocument();
    expect(currentCredential()).toBeNull();

    await user.clear(screen.getByLabelText("API key"));
    await user.type(screen.getByLabelText("API key"), "flk_right");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Runs page")).toBeInTheDocument();
    expect(router.state.location.search).toBe("?status=FAILED");
    expect(currentCredential()).toEqual({ kind: "api-key", secret: "flk_right" });
    expect(window.sessionStorage.length).toBe(1);
    expect(window.localStorage.length).toBe(0);
    expect(keys).toEqual(["flk_wrong", "flk_right"]);
  });

  it("never sends the person to another site after signing in", async () => {
    vi.stubGlobal("fetch", async () =>
      new Response(JSON.stringify({ actor: "a", role: "viewer", credential: "api_key", permissions: [] }), {
        status: 200,
        headers: { "content-type": "application/json" },
      }),
    );
    const router = app("/sign-in?next=//evil.example/phish");
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "API key" }));
    await user.type(await screen.findByLabelText("API key"), "flk_any");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Overview page")).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/dashboard");
  });

  it("signs in with an email and a password by default, and goes where the person was going", async () => {
    const forms: string[] = [];
    vi.stubGlobal("fetch", async (request: Request) => {
      forms.push(await request.text());
      const right = new URLSearchParams(forms.at(-1)).get("password") === "right password";
      const body = right
        ? { access_token: "at", token_type: "bearer", expires_in: 900, refresh_token: "rt", refresh_token_expires_in: 3600 }
        : { error: "invalid_grant", error_description: "no", detail: "no" };
      return new Response(JSON.stringify(body), { status: right ? 200 : 400, headers: { "content-type": "application/json" } });
    });
    const router = app("/runs?status=FAILED");
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Email"), "ada@example.com");
    await user.type(screen.getByLabelText("Password"), "wrong password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("The email or the password is not right.")).toBeInTheDocument();
    expect(currentCredential()).toBeNull();

    await user.clear(screen.getByLabelText("Password"));
    await user.type(screen.getByLabelText("Password"), "right password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Runs page")).toBeInTheDocument();
    expect(router.state.location.search).toBe("?status=FAILED");
    expect(currentCredential()).toMatchObject({ kind: "bearer", token: "at", refreshToken: "rt" });
    expect(new URLSearchParams(forms[1]).get("username")).toBe("ada@example.com");
  });
});
