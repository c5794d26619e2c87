import { RE2JS } from "@bufbuild/re2";
import { InvalidArgumentError } from "@uab/core";
import type { AttributeDefinitionRow, JsonObject } from "../storage/tables.js";

const MAX_STRING = 1000;
const MAX_LIST = 100;

function compile(pattern: string): RE2JS {
  return RE2JS.compile(pattern);
}

/**
 * Checks a schema's definitions before it is stored: keys unique, bounds and patterns make
 * sense for the type. Patterns are RE2 (linear time), so a tenant cannot make validation
 * slow with a pathological expression.
 */
export function checkDefinitions(defs: readonly AttributeDefinitionRow[]): void {
  const seen = new Set<string>();
  defs.forEach((d, i) => {
    const at = `attributes[${i}]`;
    if (seen.has(d.key)) throw InvalidArgumentError.field(`${at}.key`, `"${d.key}" is declared twice`);
    seen.add(d.key);
    const textual = d.type === "string" || d.type === "string_list";
    if (!textual && d.allowed_values.length > 0)
      throw InvalidArgumentError.field(`${at}.allowed_values`, "only applies to string attributes");
    if (!textual && d.pattern) throw InvalidArgumentError.field(`${at}.pattern`, "only applies to string attributes");
    if (d.type !== "number" && (d.minimum !== undefined || d.maximum !== undefined)) {
      throw InvalidArgumentError.field(
        `${at}.${d.minimum !== undefined ? "minimum" : "maximum"}`,
        "only applies to number attributes",
      );
    }
    if (d.minimum !== undefined && d.maximum !== undefined && d.minimum > d.maximum) {
      throw InvalidArgumentError.field(`${at}.minimum`, "must not exceed maximum");
    }
    if (d.pattern) {
      try {
        compile(d.pattern);
      } catch (e) {
        throw InvalidArgumentError.field(
          `${at}.pattern`,
          `is not a valid RE2 expression: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  });
}

function checkString(field: string, value: unknown, def: AttributeDefinitionRow): void {
  if (typeof value !== "string") throw InvalidArgumentError.field(field, "must be a string");
  if (value.length > MAX_STRING) throw InvalidArgumentError.field(field, `must be at most ${MAX_STRING} characters`);
  if (def.allowed_values.length > 0 && !def.allowed_values.includes(value)) {
    throw InvalidArgumentError.field(field, `must be one of ${def.allowed_values.join(", ")}`);
  }
  if (def.pattern && !compile(def.pattern).matches(value))
    throw InvalidArgumentError.field(field, `must match ${def.pattern}`);
}

/**
 * Validates custom attributes against a tenant's schema for the resource type. Undeclared
 * keys, missing required keys and values of the wrong shape are rejected with an error that
 * names the field (`attributes.cost_center`). Without a schema no attribute is accepted.
 */
export function validateAttributes(
  attributes: JsonObject,
  defs: readonly AttributeDefinitionRow[],
  resource: string,
): void {
  const byKey = new Map(defs.map((d) => [d.key, d]));
  for (const [key, value] of Object.entries(attributes)) {
    const field = `attributes.${key}`;
    const def = byKey.get(key);
    if (!def)
      throw InvalidArgumentError.field(
        field,
        `is not declared in this tenant's attribute schema for ${resource}`,
        "ATTRIBUTE_NOT_DECLARED",
      );
    switch (def.type) {
      case "string":
        checkString(field, value, def);
        break;
      case "number":
        if (typeof value !== "number" || !Number.isFinite(value))
          throw InvalidArgumentError.field(field, "must be a finite number");
        if (def.minimum !== undefined && value < def.minimum)
          throw InvalidArgumentError.field(field, `must be at least ${def.minimum}`);
        if (def.maximum !== undefined && value > def.maximum)
          throw InvalidArgumentError.field(field, `must be at most ${def.maximum}`);
        break;
      case "boolean":
        if (typeof value !== "boolean") throw InvalidArgumentError.field(field, "must be true or false");
        break;
      case "string_list":
        if (!Array.isArray(value)) throw InvalidArgumentError.field(field, "must be a list of strings");
        if (value.length > MAX_LIST) throw InvalidArgumentError.field(field, `must have at most ${MAX_LIST} items`);
        value.forEach((v, i) => {
          checkString(`${field}[${i}]`, v, def);
        });
        break;
    }
  }
  for (const def of defs) {
    if (def.required && !(def.key in attributes)) {
      throw InvalidArgumentError.field(
        `attributes.${def.key}`,
        "is required by this tenant's attribute schema",
        "ATTRIBUTE_REQUIRED",
      );
    }
  }
}
