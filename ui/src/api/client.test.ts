import { currentCredential, signIn } from "../auth/credential";
import { api, unwrap } from "./client";
import { ApiError } from "./errors";
import { highestPosition, resetPositions } from "./positions";

function answer(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

describe("the API client", () => {
  let seen: Request[];

  beforeEach(() => {
    seen = [];
    resetPositions();
  });

  function serve(...answers: Response[]) {
    vi.stubGlobal("fetch", async (request: Request) => {
      seen.push(request);
      return answers.shift() ?? answer(500, { detail: "unexpected" });
    });
  }

  it("sends the signed-in key and, after a write, the write's position on reads", async () => {
    signIn({ kind: "api-key", secret: "flk_secret" }, false);
    serve(answer(200, { id: "k" }, { "X-Flowledger-Position": "42" }), answer(200, { items: [] }));

    await api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: "k" } } });
    await api.GET("/api/v1/api-keys");

    expect(seen.map((r) => r.headers.get("X-API-Key"))).toEqual(["flk_secret", "flk_secret"]);
    expect(seen[0]!.headers.get("X-Flowledger-Min-Position")).toBeNull();
    expect(seen[1]!.headers.get("X-Flowledger-Min-Position")).toBe("42");
    expect(highestPosition()).toBe(42);
  });

  it("signs out when the server refuses the key it holds", async () => {
    signIn({ kind: "api-key", secret: "flk_revoked" }, true);
    serve(answer(401, { detail: "API key revoked." }));

    const result = await api.GET("/api/v1/whoami");

    expect(() => unwrap(result)).toThrow(ApiError);
    expect(currentCredential()).toBeNull();
    expect(window.localStorage.length).toBe(0);
  });

  it("keeps the key when another credential is refused (a sign-in attempt)", async () => {
    signIn({ kind: "api-key", secret: "flk_good" }, false);
    serve(answer(401, { detail: "no" }));

    await api.GET("/api/v1/whoami", { headers: { "X-API-Key": "flk_typo" } });

    expect(seen[0]!.headers.get("X-API-Key")).toBe("flk_typo");
    expect(currentCredential()).toEqual({ kind: "api-key", secret: "flk_good" });
  });

  it("turns an error body into an ApiError with its field errors", () => {
    const error = new ApiError(422, {
      detail: "Invalid workflow",
      errors: [{ location: "body", field: "steps.a.next_step", message: "step 'z' does not exist" }],
    });
    expect(error.detail).toBe("Invalid workflow");
    expect(error.errorsAt("steps").map((e) => e.message)).toEqual(["step 'z' does not exist"]);
    expect(error.errorsAt("start_step")).toEqual([]);
  });
});
