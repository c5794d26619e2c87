/**
 * Binding conditions: CEL expressions (`@bufbuild/cel`) over `principal`, `resource` and
 * `request`, compiled once when a binding is created or loaded and evaluated per decision.
 * An expression that fails to evaluate, or yields anything but a bool, denies (fail
 * closed) with the error as the reason.
 */
import { BlockList, isIP } from "node:net";
import { CelScalar, celEnv, celFunc, isCelError, mapType, parse, plan } from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import type { Expr } from "@bufbuild/cel-spec/cel/expr/syntax_pb.js";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** The variables a condition sees. */
export const CONDITION_VARIABLES = ["principal", "resource", "request"] as const;

const ranges = new Map<string, BlockList>();

function rangeOf(cidr: string): BlockList {
  let list = ranges.get(cidr);
  if (list) return list;
  const [net, bitsText] = cidr.split("/");
  const family = net ? isIP(net) : 0;
  const bits = bitsText === undefined ? (family === 6 ? 128 : 32) : Number(bitsText);
  if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
    throw new Error(`"${cidr}" is not an IP range (CIDR)`);
  }
  list = new BlockList();
  list.addSubnet(net!, bits, family === 6 ? "ipv6" : "ipv4");
  if (ranges.size > 10_000) ranges.clear();
  ranges.set(cidr, list);
  return list;
}

/** `ipInRange(ip, cidr)`: whether an IPv4/IPv6 address lies in a CIDR range. */
function ipInRange(ip: string, cidr: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  return rangeOf(cidr).check(ip, family === 6 ? "ipv6" : "ipv4");
}

const DYN_MAP = mapType(CelScalar.STRING, CelScalar.DYN);

const env = celEnv({
  variables: { principal: DYN_MAP, resource: DYN_MAP, request: DYN_MAP },
  funcs: [...strings, celFunc("ipInRange", [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, ipInRange)],
});

/** The input of one evaluation (maps as CEL sees them). */
export interface ConditionInput {
  readonly principal: ReadonlyMap<string, unknown>;
  readonly resource: ReadonlyMap<string, unknown>;
  readonly request: ReadonlyMap<string, unknown>;
}

/** The outcome of one evaluation. */
export type ConditionOutcome =
  | { readonly ok: true; readonly value: boolean }
  | { readonly ok: false; readonly error: string };

/** A compiled condition. */
export interface Condition {
  /** The source text. */
  readonly source: string;
  /** Evaluates; never throws. */
  evaluate(input: ConditionInput): ConditionOutcome;
}

function collectFreeIdents(expr: Expr | undefined, bound: ReadonlySet<string>, out: Set<string>): void {
  if (!expr) return;
  const k = expr.exprKind;
  switch (k.case) {
    case "identExpr":
      if (!bound.has(k.value.name)) out.add(k.value.name);
      return;
    case "selectExpr":
      collectFreeIdents(k.value.operand, bound, out);
      return;
    case "callExpr":
      collectFreeIdents(k.value.target, bound, out);
      for (const a of k.value.args) collectFreeIdents(a, bound, out);
      return;
    case "listExpr":
      for (const e of k.value.elements) collectFreeIdents(e, bound, out);
      return;
    case "structExpr":
      for (const e of k.value.entries) {
        if (e.keyKind.case === "mapKey") collectFreeIdents(e.keyKind.value, bound, out);
        collectFreeIdents(e.value, bound, out);
      }
      return;
    case "comprehensionExpr": {
      const c = k.value;
      collectFreeIdents(c.iterRange, bound, out);
      collectFreeIdents(c.accuInit, bound, out);
      const inner = new Set(bound);
      inner.add(c.iterVar);
      if (c.iterVar2) inner.add(c.iterVar2);
      inner.add(c.accuVar);
      collectFreeIdents(c.loopCondition, inner, out);
      collectFreeIdents(c.loopStep, inner, out);
      collectFreeIdents(c.result, inner, out);
      return;
    }
    default:
      return;
  }
}

function constantCidrs(expr: Expr | undefined, out: string[]): void {
  if (!expr) return;
  const k = expr.exprKind;
  if (k.case === "callExpr") {
    if (k.value.function === "ipInRange" && k.value.args.length === 2) {
      const arg = k.value.args[1]!.exprKind;
      if (arg.case === "constExpr" && arg.value.constantKind.case === "stringValue")
        out.push(arg.value.constantKind.value);
    }
    constantCidrs(k.value.target, out);
    for (const a of k.value.args) constantCidrs(a, out);
  } else if (k.case === "selectExpr") constantCidrs(k.value.operand, out);
  else if (k.case === "listExpr") for (const e of k.value.elements) constantCidrs(e, out);
  else if (k.case === "comprehensionExpr") {
    for (const e of [k.value.iterRange, k.value.accuInit, k.value.loopCondition, k.value.loopStep, k.value.result])
      constantCidrs(e, out);
  }
}

/**
 * Compiles a condition, or throws an Error whose message says what is wrong (syntax,
 * unknown variable, bad CIDR literal) for an INVALID_ARGUMENT naming `condition`.
 */
export function compileCondition(source: string): Condition {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (e) {
    throw new Error(`is not valid CEL: ${(e as Error).message}`);
  }
  const free = new Set<string>();
  collectFreeIdents(parsed.expr, new Set(), free);
  const unknown = [...free].filter((n) => !(CONDITION_VARIABLES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(
      `uses unknown variable ${unknown.map((u) => `"${u}"`).join(", ")}; a condition sees principal, resource and request`,
    );
  }
  const cidrs: string[] = [];
  constantCidrs(parsed.expr, cidrs);
  for (const c of cidrs) {
    try {
      rangeOf(c);
    } catch (e) {
      throw new Error((e as Error).message);
    }
  }
  let run: (ctx: ConditionInput) => unknown;
  try {
    const planned = plan(env, parsed);
    run = (ctx) => planned(ctx as never);
  } catch (e) {
    throw new Error(`cannot be planned: ${(e as Error).message}`);
  }
  return {
    source,
    evaluate(input) {
      let result: unknown;
      try {
        result = run(input);
      } catch (e) {
        return { ok: false, error: (e as Error).message };
      }
      if (isCelError(result)) return { ok: false, error: result.message };
      if (typeof result !== "boolean") return { ok: false, error: `evaluated to ${typeof result}, not a bool` };
      return { ok: true, value: result };
    },
  };
}

/** Converts JSON-like values (objects, arrays, numbers…) into CEL inputs (maps, lists). */
export function toCel(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map(toCel);
  if (value instanceof Map || value instanceof Date) return value;
  if (typeof value === "object") {
    const m = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) m.set(k, toCel(v));
    return m;
  }
  return value;
}

/** A CEL timestamp for `ms` since epoch. */
export function celTimestamp(ms: number): Timestamp {
  return {
    $typeName: "google.protobuf.Timestamp",
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: (ms % 1000) * 1_000_000,
  };
}
