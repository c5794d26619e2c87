/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value, so that a hash
 * over an entry does not depend on who serialised it.
 *
 * - Object members are sorted by their names' UTF-16 code units (section 3.2.3), recursively;
 *   members whose value is `undefined` are left out (as JSON.stringify does).
 * - No whitespace.
 * - Numbers are written as ECMAScript's Number.prototype.toString writes them (section
 *   3.2.2.3): `-0` is `0`, `1e+21`, `1e-7`; NaN and the infinities are rejected.
 * - Strings are escaped as JSON.stringify escapes them (section 3.2.2.2): `\"`, `\\`, the
 *   short escapes `\b \t \n \f \r`, other control characters as `\u00xx` (lower-case hex),
 *   everything else as is.
 * - Input outside the I-JSON data model (RFC 7493) is rejected with a TypeError naming the
 *   path: strings with lone surrogates (they have no UTF-8 form), bigints, functions, symbols,
 *   `undefined` outside an object member, cyclic structures, and objects that are not plain
 *   (Date, Map, typed arrays…: their JSON form would depend on a `toJSON` or be silently `{}`).
 */

/** A JSON value as accepted by {@link canonicalJson}. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;

/** A JSON object; members whose value is `undefined` are left out. */
export interface JsonObject {
  readonly [key: string]: JsonValue | undefined;
}

const UTF8 = new TextEncoder();

// In a unicode-mode regular expression a surrogate range only matches unpaired surrogates.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function fail(path: string, problem: string): never {
  throw new TypeError(`canonicalJson: ${path} ${problem}`);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function writeString(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) fail(path, "contains a lone surrogate (not I-JSON)");
  return JSON.stringify(s);
}

function write(value: unknown, path: string, open: Set<object>): string {
  switch (typeof value) {
    case "string":
      return writeString(value, path);
    case "number":
      if (!Number.isFinite(value)) fail(path, `is ${value}; only finite numbers are JSON`);
      return String(value); // ECMAScript Number::toString; String(-0) is "0".
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (open.has(value)) fail(path, "is cyclic");
      open.add(value);
      let out: string;
      if (Array.isArray(value)) {
        out = `[${value.map((item, i) => write(item, `${path}[${i}]`, open)).join(",")}]`;
      } else {
        if (!isPlainObject(value))
          fail(path, `is a ${value.constructor?.name ?? "non-plain object"}, not a plain object`);
        const record = value as Record<string, unknown>;
        const members: string[] = [];
        // Array.prototype.sort without a comparator orders strings by UTF-16 code units,
        // which is what section 3.2.3 asks for.
        for (const key of Object.keys(record).sort()) {
          const member = record[key];
          if (member === undefined) continue;
          const memberPath = `${path}[${JSON.stringify(key)}]`;
          members.push(`${writeString(key, memberPath)}:${write(member, memberPath, open)}`);
        }
        out = `{${members.join(",")}}`;
      }
      open.delete(value);
      return out;
    }
    default:
      return fail(path, `is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}, not a JSON value`);
  }
}

/**
 * The RFC 8785 canonical JSON text of a value.
 * @throws TypeError when the value is not I-JSON (see the module documentation).
 */
export function canonicalJson(value: JsonValue): string {
  return write(value, "$", new Set());
}

/**
 * The RFC 8785 canonical form of a value as UTF-8 bytes: what gets hashed.
 * @throws TypeError when the value is not I-JSON (see the module documentation).
 */
export function canonicalBytes(value: JsonValue): Uint8Array {
  return UTF8.encode(canonicalJson(value));
}
