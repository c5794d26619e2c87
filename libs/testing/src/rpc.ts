/**
 * Assertions on RPC outcomes shared by every service's tests: the error a call failed
 * with, its code, its `google.rpc.ErrorInfo` reason and the fields its `BadRequest` names.
 * They throw plain errors (no test framework needed), so benchmarks and scripts can use them.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "@uab/proto/gen/google/rpc/error_details_pb.js";

/** The error a call failed with; fails the test when it succeeded or threw something else. */
export async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  const outcome = await call.then(
    (res) => ({ ok: true as const, res }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) {
    const shown = JSON.stringify(outcome.res, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    throw new Error(`expected the call to fail, it returned ${shown}`);
  }
  if (!(outcome.err instanceof ConnectError)) throw outcome.err;
  return outcome.err;
}

/** The `google.rpc.ErrorInfo` reason of an error. */
export function reasonOf(err: ConnectError): string | undefined {
  return err.findDetails(ErrorInfoSchema)[0]?.reason;
}

/** The fields listed by the error's `google.rpc.BadRequest` detail. */
export function violatedFields(err: ConnectError): string[] {
  return err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
}

/** Asserts the call fails with `code` (and, when given, the reason and the named field). */
export async function expectCode(
  call: Promise<unknown>,
  code: Code,
  expected: { reason?: string; field?: string } = {},
): Promise<ConnectError> {
  const err = await rejection(call);
  // Compare names: a failure then reads "NotFound" vs "PermissionDenied", not 5 vs 7.
  const fail = (what: string) => {
    throw new Error(`${what}; the call failed with ${Code[err.code]}: ${err.rawMessage}`);
  };
  if (err.code !== code) fail(`expected ${Code[code]}`);
  if (expected.reason !== undefined && reasonOf(err) !== expected.reason) {
    fail(`expected reason ${expected.reason}, got ${reasonOf(err) ?? "none"}`);
  }
  if (expected.field !== undefined) {
    if (!err.rawMessage.includes(`${expected.field}:`)) fail(`expected the message to name ${expected.field}`);
    const fields = violatedFields(err);
    if (!fields.includes(expected.field))
      fail(`expected BadRequest to name ${expected.field} (it names ${fields.join(", ") || "nothing"})`);
  }
  return err;
}

/** Asserts INVALID_ARGUMENT naming `field` in the message and in the BadRequest detail. */
export function expectInvalid(call: Promise<unknown>, field: string, reason?: string): Promise<ConnectError> {
  return expectCode(call, Code.InvalidArgument, reason === undefined ? { field } : { field, reason });
}
