/**
 * A form from a workflow's ``input_schema``: one control per top-level property of an object
 * schema (text, number, whole number, yes/no, a choice). A property of another kind (an object,
 * a list) is edited as JSON; a schema that is not an object of properties is one JSON field.
 */
export type FieldKind = "string" | "number" | "integer" | "boolean" | "choice" | "json";

export interface FormField {
  name: string;
  kind: FieldKind;
  required: boolean;
  title: string;
  description?: string;
  choices?: unknown[];
  initial: string;
}

type Schema = Record<string, unknown>;

function kindOf(schema: Schema): FieldKind {
  if (Array.isArray(schema.enum)) return "choice";
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type === "string" || type === "number" || type === "integer" || type === "boolean") return type;
  return "json";
}

function initialOf(kind: FieldKind, schema: Schema): string {
  const value = schema.default;
  if (value === undefined) return kind === "boolean" ? "false" : "";
  if (kind === "json" || kind === "choice") return JSON.stringify(value);
  return String(value);
}

export function fieldsOf(inputSchema: unknown): FormField[] | null {
  if (typeof inputSchema !== "object" || inputSchema === null) return [];
  const schema = inputSchema as Schema;
  if (schema.type !== undefined && schema.type !== "object") return null;
  const properties = typeof schema.properties === "object" && schema.properties !== null ? schema.properties : {};
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  const named: FormField[] = Object.entries(properties as Record<string, Schema>).map(([name, property]) => {
    const kind = kindOf(property ?? {});
    return {
      name,
      kind,
      required: required.has(name),
      title: typeof property?.title === "string" ? property.title : name,
      description: typeof property?.description === "string" ? property.description : undefined,
      choices: kind === "choice" ? (property.enum as unknown[]) : undefined,
      initial: initialOf(kind, property ?? {}),
    };
  });
  // Required properties the schema lists without describing them: plain text.
  for (const name of required) {
    if (!named.some((f) => f.name === name)) {
      named.push({ name, kind: "json", required: true, title: name, initial: "", description: "any JSON value" });
    }
  }
  return named;
}

export class FormProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The input object the form's text values stand for; empty optional fields are left out. */
export function inputOf(fields: FormField[], values: Record<string, string>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = (values[field.name] ?? "").trim();
    if (raw === "" && field.kind !== "boolean") continue;
    switch (field.kind) {
      case "string":
        input[field.name] = values[field.name];
        break;
      case "number":
      case "integer": {
        const number = Number(raw);
        if (!Number.isFinite(number) || (field.kind === "integer" && !Number.isInteger(number))) {
          throw new FormProblem(field.name, field.kind === "integer" ? "must be a whole number" : "must be a number");
        }
        input[field.name] = number;
        break;
      }
      case "boolean":
        input[field.name] = raw === "true";
        break;
      case "choice":
      case "json":
        try {
          input[field.name] = JSON.parse(raw);
        } catch {
          if (field.kind === "json" && !/^[[{"\d-]|^(true|false|null)$/.test(raw)) input[field.name] = raw;
          else throw new FormProblem(field.name, "must be JSON");
        }
        break;
    }
  }
  return input;
}

/** The form field a server error about the input belongs to (``input_data.text``, or the
 * ``'text' is a required property`` of ``input_data``). */
export function fieldOfError(field: string, message: string): string | null {
  if (field.startsWith("input_data.")) return field.slice("input_data.".length).split(".")[0] ?? null;
  const required = /^'([^']+)' is a required property/.exec(message);
  return field === "input_data" && required ? required[1]! : null;
}
