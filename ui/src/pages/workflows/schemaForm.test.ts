import { FormProblem, fieldOfError, fieldsOf, inputOf } from "./schemaForm";

const schema = {
  type: "object",
  required: ["text", "count"],
  properties: {
    text: { type: "string", minLength: 1, description: "What to say" },
    count: { type: "integer", default: 2 },
    ratio: { type: "number" },
    loud: { type: "boolean" },
    tone: { enum: ["calm", "loud"] },
    tags: { type: "array", items: { type: "string" } },
  },
};

describe("fieldsOf", () => {
  it("makes one control per property, of its kind", () => {
    const fields = fieldsOf(schema)!;
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ["text", "string", true],
      ["count", "integer", true],
      ["ratio", "number", false],
      ["loud", "boolean", false],
      ["tone", "choice", false],
      ["tags", "json", false],
    ]);
    expect(fields[1]!.initial).toBe("2");
  });

  it("asks for required properties the schema does not describe", () => {
    expect(fieldsOf({ type: "object", required: ["text"] })).toEqual([
      { name: "text", kind: "json", required: true, title: "text", initial: "", description: "any JSON value" },
    ]);
  });

  it("gives up on schemas that are not objects (the JSON editor takes over)", () => {
    expect(fieldsOf({ type: "array" })).toBeNull();
    expect(fieldsOf(null)).toEqual([]);
  });
});

describe("inputOf", () => {
  const fields = fieldsOf(schema)!;

  it("converts each value to its type and leaves out empty optional fields", () => {
    expect(
      inputOf(fields, { text: "hi", count: "3", ratio: "", loud: "true", tone: '"calm"', tags: '["a"]' }),
    ).toEqual({ text: "hi", count: 3, loud: true, tone: "calm", tags: ["a"] });
  });

  it("names the field whose value does not fit", () => {
    expect(() => inputOf(fields, { count: "2.5" })).toThrow(FormProblem);
    try {
      inputOf(fields, { count: "2.5" });
    } catch (problem) {
      expect((problem as FormProblem).field).toBe("count");
    }
  });
});

describe("fieldOfError", () => {
  it("finds the field of the server's errors", () => {
    expect(fieldOfError("input_data.text", "'' is too short")).toBe("text");
    expect(fieldOfError("input_data", "'text' is a required property")).toBe("text");
    expect(fieldOfError("version", "no such version")).toBeNull();
  });
});
