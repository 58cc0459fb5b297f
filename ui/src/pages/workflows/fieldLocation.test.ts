import { locateField, pathOf } from "./fieldLocation";

const text = `{
  "start_step": "a",
  "steps": {
    "a": {"agent_name": "echo", "next_step": "b"},
    "b": {"agent_name": "echo", "next_step": "a"}
  },
  "triggers": [{"type": "schedule", "cron": "nope"}]
}`;

const marked = (field: string) => {
  const span = locateField(text, field);
  return text.slice(span.from, span.to);
};

describe("pathOf", () => {
  it("splits dotted fields and list indices", () => {
    expect(pathOf("steps.a.next_step")).toEqual(["steps", "a", "next_step"]);
    expect(pathOf("triggers[0].cron")).toEqual(["triggers", 0, "cron"]);
    expect(pathOf("triggers.0.cron")).toEqual(["triggers", 0, "cron"]);
  });
});

describe("locateField", () => {
  it("marks the key of the field the server names", () => {
    expect(marked("steps")).toBe('"steps"');
    expect(marked("steps.b.next_step")).toBe('"next_step"');
    expect(marked("triggers[0].cron")).toBe('"cron"');
  });

  it("falls back to the nearest field that is in the text", () => {
    expect(marked("steps.b.input_mapping.q")).toBe('"b"');
    expect(marked("timeout_ms")).toBe("{");
  });
});
