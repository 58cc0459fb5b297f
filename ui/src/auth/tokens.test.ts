import { api } from "../api/client";
import { resetPositions } from "../api/positions";
import { currentCredential, signIn, signOut } from "./credential";
import { REFRESH_MARGIN_MS, endSession, passwordGrant } from "./tokens";

function answer(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function tokens(access: string, refresh: string, expiresIn = 900) {
  return answer(200, {
    access_token: access,
    token_type: "bearer",
    expires_in: expiresIn,
    refresh_token: refresh,
    refresh_token_expires_in: 86_400,
  });
}

interface Seen {
  url: string;
  method: string;
  authorization: string | null;
  body: string;
}

describe("a signed-in user's session", () => {
  let seen: Seen[];

  beforeEach(() => {
    seen = [];
    resetPositions();
  });
  afterEach(() => signOut());

  /** Stands in for the server: ``answers`` in order, whatever is asked. */
  function serve(...answers: Response[]) {
    vi.stubGlobal("fetch", async (request: Request) => {
      seen.push({
        url: new URL(request.url).pathname,
        method: request.method,
        authorization: request.headers.get("Authorization"),
        body: await request.text(),
      });
      return answers.shift() ?? answer(500, { detail: "unexpected" });
    });
  }

  function signedIn(token: string, refreshToken: string, expiresInMs = 900_000) {
    signIn({ kind: "bearer", token, refreshToken, expiresAt: Date.now() + expiresInMs }, false);
  }

  it("signs in with the password grant and then sends the access token as a bearer", async () => {
    serve(tokens("at-1", "rt-1"), answer(200, { items: [] }));

    const credential = await passwordGrant("ada@example.com", "correct horse");
    signIn(credential, false);
    await api.GET("/api/v1/api-keys");

    expect(seen[0]!.url).toBe("/api/v1/auth/token");
    expect(new URLSearchParams(seen[0]!.body)).toEqual(
      new URLSearchParams({ grant_type: "password", username: "ada@example.com", password: "correct horse" }),
    );
    expect(seen[1]!.authorization).toBe("Bearer at-1");
    expect(currentCredential()).toMatchObject({ kind: "bearer", token: "at-1", refreshToken: "rt-1" });
  });

  it("says so when the email or password is refused, and signs nobody in", async () => {
    serve(answer(400, { error: "invalid_grant", detail: "Wrong email or password.", error_description: "x" }));
    await expect(passwordGrant("ada@example.com", "wrong")).rejects.toThrow("The email or the password is not right.");
    expect(currentCredential()).toBeNull();
  });

  it("refreshes an access token about to expire before using it, and keeps the new refresh token", async () => {
    signedIn("at-old", "rt-old", REFRESH_MARGIN_MS - 1000);
    serve(tokens("at-new", "rt-new"), answer(200, { items: [] }));

    await api.GET("/api/v1/api-keys");

    expect(seen.map((s) => s.url)).toEqual(["/api/v1/auth/token", "/api/v1/api-keys"]);
    expect(new URLSearchParams(seen[0]!.body).get("refresh_token")).toBe("rt-old");
    expect(seen[0]!.authorization).toBeNull(); // the refresh token is the credential there
    expect(seen[1]!.authorization).toBe("Bearer at-new");
    expect(JSON.parse(window.sessionStorage.getItem("flowledger.credential")!)).toMatchObject({
      token: "at-new",
      refreshToken: "rt-new",
    });
  });

  it("refreshes once when a request is refused, and sends the request again with its body", async () => {
    signedIn("at-old", "rt-old");
    serve(answer(401, { detail: "expired" }), tokens("at-new", "rt-new"), answer(202, { run_id: "r" }));

    const result = await api.POST("/api/v1/runs/{run_id}/cancel", {
      params: { path: { run_id: "r" } },
      body: { reason: "too slow" },
    } as never);

    expect(result.response.status).toBe(202);
    expect(seen.map((s) => [s.url, s.authorization])).toEqual([
      ["/api/v1/runs/r/cancel", "Bearer at-old"],
      ["/api/v1/auth/token", null],
      ["/api/v1/runs/r/cancel", "Bearer at-new"],
    ]);
    expect(seen[2]!.body).toBe(seen[0]!.body);
    expect(currentCredential()).toMatchObject({ token: "at-new" });
  });

  it("uses one refresh for requests refused at the same time (a refresh token works once)", async () => {
    signedIn("at-old", "rt-old");
    serve(
      answer(401, { detail: "expired" }),
      answer(401, { detail: "expired" }),
      tokens("at-new", "rt-new"),
      answer(200, { items: [] }),
      answer(200, { items: [] }),
    );

    await Promise.all([api.GET("/api/v1/api-keys"), api.GET("/api/v1/webhooks")]);

    expect(seen.filter((s) => s.url === "/api/v1/auth/token")).toHaveLength(1);
    expect(seen.slice(3).map((s) => s.authorization)).toEqual(["Bearer at-new", "Bearer at-new"]);
  });

  it("returns to the sign-in page when the refresh is refused (the session is over)", async () => {
    signedIn("at-old", "rt-old");
    serve(answer(401, { detail: "session ended" }), answer(400, { error: "invalid_grant", detail: "no" }));

    const result = await api.GET("/api/v1/api-keys");

    expect(result.response.status).toBe(401);
    expect(currentCredential()).toBeNull();
    expect(window.sessionStorage.length).toBe(0);
  });

  it("keeps the session when the server cannot be reached for a refresh", async () => {
    signedIn("at-old", "rt-old", 1000);
    let calls = 0;
    vi.stubGlobal("fetch", async (request: Request) => {
      calls += 1;
      if (new URL(request.url).pathname === "/api/v1/auth/token") throw new TypeError("offline");
      return answer(200, { items: [] });
    });

    const result = await api.GET("/api/v1/api-keys");

    expect(result.response.status).toBe(200);
    expect(calls).toBe(2);
    expect(currentCredential()).toMatchObject({ token: "at-old", refreshToken: "rt-old" });
  });

  it("never refreshes nor signs out for a request that brought its own token", async () => {
    signedIn("at-mine", "rt-mine");
    serve(answer(401, { detail: "no" }));

    await api.GET("/api/v1/whoami", { headers: { Authorization: "Bearer someone-else" } });

    expect(seen).toHaveLength(1);
    expect(currentCredential()).toMatchObject({ token: "at-mine" });
  });

  it("ends the session on the server when signing out", async () => {
    signedIn("at-1", "rt-1");
    serve(new Response(null, { status: 204 }));

    await endSession();

    expect(seen).toEqual([{ url: "/api/v1/auth/logout", method: "POST", authorization: "Bearer at-1", body: "" }]);
    expect(currentCredential()).toBeNull();
  });

  it("signs out here even when the server cannot be reached", async () => {
    signedIn("at-1", "rt-1");
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("offline");
    });

    await endSession();

    expect(currentCredential()).toBeNull();
  });

  it("signs out an API key without asking the server (a key has no session)", async () => {
    signIn({ kind: "api-key", secret: "flk_x" }, true);
    serve();

    await endSession();

    expect(seen).toEqual([]);
    expect(currentCredential()).toBeNull();
    expect(window.localStorage.length).toBe(0);
  });
});
