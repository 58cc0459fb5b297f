import type { components } from "./schema";

export type ErrorBody = components["schemas"]["ErrorBody"];
export type FieldError = components["schemas"]["FieldError"];

/** An answer of the API that was not a success: its status and ADR 0004's error body. */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  readonly errors: FieldError[];

  constructor(status: number, body: unknown) {
    const parsed = asErrorBody(body);
    super(parsed?.detail ?? `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.detail = this.message;
    this.errors = parsed?.errors ?? [];
  }

  /** Errors whose field is ``field`` or lies inside it (``steps`` holds ``steps.a.next_step``). */
  errorsAt(field: string): FieldError[] {
    return this.errors.filter((e) => e.field === field || e.field.startsWith(`${field}.`));
  }
}

function asErrorBody(body: unknown): ErrorBody | null {
  if (typeof body !== "object" || body === null || !("detail" in body)) return null;
  const detail = (body as { detail: unknown }).detail;
  const errors = (body as { errors?: unknown }).errors;
  return {
    detail: typeof detail === "string" ? detail : JSON.stringify(detail),
    errors: Array.isArray(errors) ? (errors as FieldError[]) : null,
  };
}

/** A human sentence for any error a query or mutation may throw. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof TypeError) return "The server could not be reached.";
  if (error instanceof Error) return error.message;
  return String(error);
}
