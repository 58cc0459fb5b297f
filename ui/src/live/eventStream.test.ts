import { parseEnvelope } from "./eventStream";

describe("parseEnvelope", () => {
  it("reads an envelope", () => {
    const envelope = parseEnvelope(
      JSON.stringify({ event_type: "RunStepSucceeded", position: 42, data: { step_id: "a" } }),
    );
    expect(envelope?.position).toBe(42);
    expect(envelope?.event_type).toBe("RunStepSucceeded");
  });

  it("ignores what is not an envelope", () => {
    expect(parseEnvelope("keep-alive")).toBeNull();
    expect(parseEnvelope(JSON.stringify({ hello: 1 }))).toBeNull();
  });
});
