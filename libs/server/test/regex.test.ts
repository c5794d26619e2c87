/**
 * The validation interceptor matches `pattern` rules with the platform RegExp for inputs up
 * to 1 KiB and with RE2 beyond. This proves the two agree on every pattern the contracts
 * declare, over random inputs and near-misses of valid ones, and that long inputs and
 * patterns the platform cannot compile go to RE2.
 */
import { type DescField, type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { RE2JS } from "@bufbuild/re2";
import { describe, expect, it } from "@jest/globals";
import { contractFiles } from "@uab/proto";
import { schemaRegexMatch } from "../src/interceptors.js";

function patternsOf(f: DescField): string[] {
  if (!hasOption(f, fieldRules)) return [];
  const rules = getOption(f, fieldRules);
  const out: string[] = [];
  if (rules.type.case === "string" && rules.type.value.pattern) out.push(rules.type.value.pattern);
  if (rules.type.case === "repeated") {
    const items = rules.type.value.items;
    if (items?.type.case === "string" && items.type.value.pattern) out.push(items.type.value.pattern);
  }
  return out;
}

function collect(): string[] {
  const seen = new Set<string>();
  const visit = (m: DescMessage) => {
    for (const f of m.fields) for (const p of patternsOf(f)) seen.add(p);
    for (const n of m.nestedMessages) visit(n);
  };
  for (const file of contractFiles) for (const m of file.messages) visit(m);
  return [...seen].sort();
}

// A seeded generator, so a failure reproduces.
let seed = 42;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const ALPHABET = "abcxyz0129_-.*:/@ ABZ\n\u00e9";

function randomString(max: number): string {
  let s = "";
  const len = rand(max + 1);
  for (let i = 0; i < len; i++) s += ALPHABET[rand(ALPHABET.length)];
  return s;
}

/** Strings that are valid or nearly valid for typical UAB patterns. */
function nearMisses(): string[] {
  const id = "0123456789abcdefghjkmnpqrs";
  const out: string[] = [];
  for (const prefix of ["ten", "prj", "team", "usr", "role", "bind", "areq", "apol", "sa", "key", "x"]) {
    out.push(`${prefix}_${id}`, `${prefix}_${id}z`, `${prefix}_${id.slice(1)}`, `${prefix}_${id.toUpperCase()}`);
  }
  out.push("tenancy.projects.get", "tenancy.projects.*", "tenancy.*", "*", "a.b", "a.b.c.d.e", "tenancy..get", "acme");
  out.push("acme-inc", "-acme", "acme-", "a", "x".repeat(64), "https://example.com/x", "en-US", "de");
  return out;
}

describe("schemaRegexMatch", () => {
  const patterns = collect();

  it("finds the contracts' patterns", () => {
    expect(patterns.length).toBeGreaterThan(20);
    expect(patterns).toContain("^ten_[0-9a-z]{26}$");
  });

  it("agrees with RE2 on every contract pattern", () => {
    const disagreements: string[] = [];
    for (const pattern of patterns) {
      const re2 = RE2JS.compile(pattern);
      const inputs = [...nearMisses(), ...Array.from({ length: 300 }, () => randomString(40))];
      let matched = 0;
      for (const input of inputs) {
        const expected = re2.test(input);
        if (expected) matched++;
        if (schemaRegexMatch(pattern, input) !== expected) disagreements.push(`${pattern} on ${JSON.stringify(input)}`);
      }
      // Each pattern is exercised on both sides where the inputs allow it.
      expect(matched).toBeLessThan(inputs.length);
    }
    expect(disagreements).toEqual([]);
  });

  it("matches inputs over 1 KiB with RE2 and patterns the platform rejects with RE2", () => {
    const long = `ten_${"a".repeat(2000)}`;
    expect(schemaRegexMatch("^ten_[a-z]+$", long)).toBe(true);
    expect(schemaRegexMatch("^ten_[a-z]{26}$", long)).toBe(false);
    // `(?i)` is RE2 syntax the platform RegExp does not accept.
    expect(schemaRegexMatch("(?i)^abc$", "ABC")).toBe(true);
    expect(schemaRegexMatch("(?i)^abc$", "abd")).toBe(false);
  });
});
