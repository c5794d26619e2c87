// A strict checker of Envoy configuration against Envoy's own API protos (from
// @grpc/grpc-js-xds), in the way Envoy reads a bootstrap: YAML → JSON → proto with unknown
// fields rejected. protobufjs loads the protos; its `fromObject` is lenient (it drops unknown
// fields and coerces types), so the walk below is our own. It follows the proto3 JSON mapping
// (proto or lowerCamel field names, well-known types in their JSON form), resolves every
// `google.protobuf.Any` by its `@type` and checks the nested message the same way, and applies
// the protoc-gen-validate rules Envoy enforces at load time that configs most often break
// (required, min_len, min_items, numeric and duration bounds, required oneofs), plus a ban on
// deprecated fields so the config does not rot.
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const googleProtos = dirname(require.resolve("google-proto-files/package.json"));
const INCLUDE = [
  join(xdsDeps, "envoy-api"),
  join(xdsDeps, "xds"),
  join(xdsDeps, "googleapis"),
  join(xdsDeps, "protoc-gen-validate"),
  googleProtos,
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const INT_RANGE: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const WRAPPERS: Record<string, string> = {
  "google.protobuf.DoubleValue": "double",
  "google.protobuf.FloatValue": "float",
  "google.protobuf.Int64Value": "int64",
  "google.protobuf.UInt64Value": "uint64",
  "google.protobuf.Int32Value": "int32",
  "google.protobuf.UInt32Value": "uint32",
  "google.protobuf.BoolValue": "bool",
  "google.protobuf.StringValue": "string",
  "google.protobuf.BytesValue": "bytes",
};

const DURATION = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** protoc's json_name: `foo_bar` → `fooBar`. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function kind(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  return typeof v === "object" ? "object" : typeof v;
}

function durationNanos(v: string): bigint | undefined {
  const m = DURATION.exec(v);
  if (!m) return undefined;
  const nanos = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? "").padEnd(9, "0") || "0");
  return m[1] === "-" ? -nanos : nanos;
}

/** Envoy's API protos, loaded lazily package by package as `@type`s name them. */
export class EnvoySchema {
  readonly root = new protobuf.Root();
  private readonly loadedDirs = new Set<string>();

  constructor() {
    this.root.resolvePath = (_origin: string, target: string) => {
      for (const dir of INCLUDE) {
        const p = join(dir, target);
        if (existsSync(p)) return p;
      }
      return target;
    };
    this.root.loadSync("envoy/config/bootstrap/v3/bootstrap.proto", { keepCase: true });
    this.root.resolveAll();
  }

  /** Finds a message type, loading the protos of its package when needed (undefined if none). */
  lookupType(fullName: string): protobuf.Type | undefined {
    const found = this.tryLookup(fullName);
    if (found) return found;
    // Packages are the lower-case leading segments: envoy.extensions.filters.http.cors.v3.Cors
    const parts = fullName.split(".");
    const pkg = parts
      .slice(
        0,
        parts.findIndex((p) => /^[A-Z]/.test(p)),
      )
      .join("/");
    if (!pkg || this.loadedDirs.has(pkg)) return undefined;
    this.loadedDirs.add(pkg);
    for (const base of INCLUDE) {
      const dir = join(base, pkg);
      if (!existsSync(dir)) continue;
      const files = readdirSync(dir)
        .filter((f) => f.endsWith(".proto"))
        .map((f) => `${pkg}/${f}`);
      if (files.length === 0) continue;
      this.root.loadSync(files, { keepCase: true });
      this.root.resolveAll();
    }
    return this.tryLookup(fullName);
  }

  private tryLookup(fullName: string): protobuf.Type | undefined {
    try {
      const t = this.root.lookup(fullName);
      return t instanceof protobuf.Type ? t : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every problem found checking `value` as a `typeName` message; empty when valid. */
  check(typeName: string, value: unknown): string[] {
    const type = this.lookupType(typeName);
    if (!type) return [`unknown message type ${typeName}`];
    const errors: string[] = [];
    this.message(type, value as Json, "", errors);
    return errors;
  }

  private message(type: protobuf.Type, value: Json, path: string, errors: string[]): void {
    const name = type.fullName.replace(/^\./, "");
    const at = path || "<root>";
    const wrapped = WRAPPERS[name];
    if (wrapped) {
      this.scalar(wrapped, value, path, errors);
      return;
    }
    switch (name) {
      case "google.protobuf.Any":
        this.any(value, path, errors);
        return;
      case "google.protobuf.Duration":
        if (typeof value !== "string" || durationNanos(value) === undefined)
          errors.push(`${at}: expected a duration like "1.5s", got ${JSON.stringify(value)}`);
        return;
      case "google.protobuf.Timestamp":
        if (typeof value !== "string" || !TIMESTAMP.test(value))
          errors.push(`${at}: expected an RFC 3339 timestamp, got ${JSON.stringify(value)}`);
        return;
      case "google.protobuf.FieldMask":
        if (typeof value !== "string") errors.push(`${at}: expected a field mask string, got ${kind(value)}`);
        return;
      case "google.protobuf.Struct":
        if (kind(value) !== "object") errors.push(`${at}: expected an object, got ${kind(value)}`);
        return;
      case "google.protobuf.ListValue":
        if (!Array.isArray(value)) errors.push(`${at}: expected a list, got ${kind(value)}`);
        return;
      case "google.protobuf.Value":
        return;
    }
    if (kind(value) !== "object") {
      errors.push(`${at}: expected an object (${name}), got ${kind(value)}`);
      return;
    }
    this.fields(type, value as Obj, path, errors);
  }

  private fields(type: protobuf.Type, obj: Obj, path: string, errors: string[]): void {
    const byName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byName.set(f.name, f);
      byName.set(jsonName(f.name), f);
    }
    const seen = new Set<string>();
    for (const [key, value] of Object.entries(obj)) {
      const p = path ? `${path}.${key}` : key;
      const field = byName.get(key);
      if (!field) {
        errors.push(`${p}: unknown field of ${type.fullName.replace(/^\./, "")}`);
        continue;
      }
      if (seen.has(field.name)) errors.push(`${p}: field ${field.name} set twice`);
      seen.add(field.name);
      const opts = field.options ?? {};
      if (opts.deprecated === true) errors.push(`${p}: deprecated field`);
      if (opts["(envoy.annotations.disallowed_by_default)"] === true) errors.push(`${p}: disallowed by default`);
      if (value === null) {
        errors.push(`${p}: null (leave the field out instead)`);
        continue;
      }
      this.field(field, value, p, errors);
    }
    // oneofs: at most one member, exactly one when (validate.required).
    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => seen.has(f.name));
      if (set.length > 1)
        errors.push(`${path || "<root>"}: oneof ${oneof.name} has ${set.map((f) => f.name).join(" and ")}`);
      if (set.length === 0 && oneof.options?.["(validate.required)"] === true)
        errors.push(`${path || "<root>"}: oneof ${oneof.name} is required`);
    }
    for (const f of type.fieldsArray) {
      // Rules on a oneof member apply only when that member is the one set.
      if (seen.has(f.name) || f.partOf) continue;
      const o = f.options ?? {};
      if (
        o["(validate.rules).message.required"] ||
        o["(validate.rules).duration.required"] ||
        o["(validate.rules).any.required"] ||
        o["(validate.rules).timestamp.required"]
      ) {
        errors.push(`${path ? `${path}.` : ""}${f.name}: required`);
      }
      if (o["(validate.rules).string.ignore_empty"] === true || o["(validate.rules).repeated.ignore_empty"] === true)
        continue;
      const minLen = o["(validate.rules).string.min_len"] ?? o["(validate.rules).string.min_bytes"];
      if (typeof minLen === "number" && minLen > 0)
        errors.push(`${path ? `${path}.` : ""}${f.name}: required (min_len ${minLen})`);
      const minItems = o["(validate.rules).repeated.min_items"];
      if (typeof minItems === "number" && minItems > 0)
        errors.push(`${path ? `${path}.` : ""}${f.name}: needs at least ${minItems} item(s)`);
    }
  }

  private field(field: protobuf.Field, value: Json, path: string, errors: string[]): void {
    const rules = field.options ?? {};
    if (field instanceof protobuf.MapField) {
      if (kind(value) !== "object") {
        errors.push(`${path}: expected a map (object), got ${kind(value)}`);
        return;
      }
      for (const [k, v] of Object.entries(value as Obj)) {
        if (field.keyType !== "string" && field.keyType !== "bool")
          this.scalar(field.keyType, k, `${path}[${k}]`, errors);
        this.single(field, v, `${path}.${k}`, errors, {});
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        errors.push(`${path}: expected a list, got ${kind(value)}`);
        return;
      }
      const min = rules["(validate.rules).repeated.min_items"];
      if (typeof min === "number" && value.length < min) errors.push(`${path}: needs at least ${min} item(s)`);
      value.forEach((v, i) => {
        this.single(field, v, `${path}[${i}]`, errors, {});
      });
      return;
    }
    this.single(field, value, path, errors, rules);
  }

  private single(
    field: protobuf.Field,
    value: Json,
    path: string,
    errors: string[],
    rules: Record<string, unknown>,
  ): void {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Enum) {
      this.enumValue(resolved, value, path, errors);
    } else if (resolved instanceof protobuf.Type) {
      this.message(resolved, value, path, errors);
      const name = resolved.fullName.replace(/^\./, "");
      if (name === "google.protobuf.Duration" && typeof value === "string")
        this.durationRules(value, rules, path, errors);
      const w = WRAPPERS[name];
      if (w) this.numberRules(w, value, rules, path, errors);
    } else {
      this.scalar(field.type, value, path, errors);
      this.numberRules(field.type, value, rules, path, errors);
      if (typeof value === "string") {
        const min = rules["(validate.rules).string.min_len"] ?? rules["(validate.rules).string.min_bytes"];
        if (typeof min === "number" && value.length < min) errors.push(`${path}: shorter than ${min}`);
      }
    }
  }

  private enumValue(e: protobuf.Enum, value: Json, path: string, errors: string[]): void {
    if (typeof value === "string") {
      if (!(value in e.values))
        errors.push(`${path}: ${JSON.stringify(value)} is not a value of ${e.fullName.replace(/^\./, "")}`);
      else if (e.valuesOptions?.[value]?.deprecated === true) errors.push(`${path}: enum value ${value} is deprecated`);
    } else if (typeof value === "number") {
      if (!Object.values(e.values).includes(value))
        errors.push(`${path}: ${value} is not a value of ${e.fullName.replace(/^\./, "")}`);
    } else {
      errors.push(`${path}: expected an enum name, got ${kind(value)}`);
    }
  }

  private scalar(type: string, value: Json, path: string, errors: string[]): void {
    const bad = (what: string) =>
      errors.push(`${path}: expected ${what} (${type}), got ${kind(value)} ${JSON.stringify(value)}`);
    switch (type) {
      case "string":
        if (typeof value !== "string") bad("a string");
        return;
      case "bool":
        if (typeof value !== "boolean") bad("true or false");
        return;
      case "bytes":
        if (typeof value !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) bad("base64");
        return;
      case "double":
      case "float":
        if (typeof value === "number" || value === "NaN" || value === "Infinity" || value === "-Infinity") return;
        if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return;
        bad("a number");
        return;
    }
    const range = INT_RANGE[type];
    if (!range) {
      errors.push(`${path}: unsupported scalar type ${type}`);
      return;
    }
    let n: bigint;
    if (typeof value === "number" && Number.isInteger(value)) n = BigInt(value);
    else if (typeof value === "string" && /^-?\d+$/.test(value)) n = BigInt(value);
    else {
      bad("an integer");
      return;
    }
    if (n < range[0] || n > range[1]) errors.push(`${path}: ${n} is out of range for ${type}`);
  }

  private numberRules(type: string, value: Json, rules: Record<string, unknown>, path: string, errors: string[]): void {
    if (typeof value !== "number") return;
    const prefix = `(validate.rules).${type}.`;
    const r = (k: string) => rules[prefix + k];
    const check = (k: string, ok: (b: number) => boolean) => {
      const bound = r(k);
      if (typeof bound === "number" && !ok(bound)) errors.push(`${path}: ${value} violates ${k} ${bound}`);
    };
    check("gt", (b) => value > b);
    check("gte", (b) => value >= b);
    check("lt", (b) => value < b);
    check("lte", (b) => value <= b);
  }

  private durationRules(value: string, rules: Record<string, unknown>, path: string, errors: string[]): void {
    const v = durationNanos(value);
    if (v === undefined) return;
    for (const op of ["gt", "gte", "lt", "lte"] as const) {
      const s = rules[`(validate.rules).duration.${op}.seconds`];
      const ns = rules[`(validate.rules).duration.${op}.nanos`];
      if (s === undefined && ns === undefined) continue;
      const bound = BigInt(Number(s ?? 0)) * 1_000_000_000n + BigInt(Number(ns ?? 0));
      const ok = op === "gt" ? v > bound : op === "gte" ? v >= bound : op === "lt" ? v < bound : v <= bound;
      if (!ok) errors.push(`${path}: ${value} violates duration ${op} ${bound}ns`);
    }
  }

  private any(value: Json, path: string, errors: string[]): void {
    const at = path || "<root>";
    if (kind(value) !== "object") {
      errors.push(`${at}: expected an Any object, got ${kind(value)}`);
      return;
    }
    const { "@type": url, ...rest } = value as Obj;
    if (typeof url !== "string" || !url.includes("/")) {
      errors.push(`${at}: Any without a valid "@type"`);
      return;
    }
    const typeName = url.slice(url.lastIndexOf("/") + 1);
    const type = this.lookupType(typeName);
    if (!type) {
      errors.push(`${at}: unknown @type ${typeName}`);
      return;
    }
    // Well-known types with a special JSON form sit under "value".
    const special =
      typeName in WRAPPERS ||
      /^google\.protobuf\.(Duration|Timestamp|FieldMask|Struct|Value|ListValue)$/.test(typeName);
    if (special) {
      const extra = Object.keys(rest).filter((k) => k !== "value");
      if (extra.length) errors.push(`${at}: unknown field(s) ${extra.join(", ")} beside value`);
      this.message(type, (rest.value ?? null) as Json, `${path}.value`, errors);
      return;
    }
    this.fields(type, rest, path, errors);
  }
}
