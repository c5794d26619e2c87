import { describe, expect, it } from "@jest/globals";
import { canonicalBytes, canonicalJson, entryLeafHash, type JsonValue, leafHash } from "@uab/tlog";
import { hex } from "./support.js";

/** An IEEE 754 double from its big-endian hex bit pattern. */
function double(bits: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${bits}`));
  return view.getFloat64(0);
}

describe("RFC 8785 canonical JSON", () => {
  it("matches the section 3.2.2 example, and its section 3.2.4 UTF-8 bytes", () => {
    // The input as the RFC writes it, parsed (its number literals exercise the serialisation).
    const input = JSON.parse(`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
      "literals": [null, true, false]
    }`);
    const want = `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`;
    expect(canonicalJson(input)).toBe(want);
    const bytes = [
      "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72",
      "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a",
      "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31",
      "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37",
      "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30",
      "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d",
    ]
      .join(" ")
      .replaceAll(" ", "");
    expect(hex(canonicalBytes(input))).toBe(bytes);
  });

  it("sorts members by UTF-16 code units (the section 3.2.3 example)", () => {
    const input = JSON.parse(`{
      "\\u20ac": "Euro Sign",
      "\\r": "Carriage Return",
      "\\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\\ud83d\\ude00": "Emoji: Grinning Face",
      "\\u0080": "Control",
      "\\u00f6": "Latin Small Letter O With Diaeresis"
    }`);
    // (Read back with a regular expression: a parsed object would list the key "1" first.)
    const order = [...canonicalJson(input).matchAll(/"((?:[^"\\]|\\.)*)":"[^"]*"/g)].map((m) =>
      JSON.parse(`"${m[1]}"`),
    );
    expect(order).toEqual(["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"]);
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    // U+1F600 (surrogates D83D DE00) sorts before U+FB33: code units, not code points.
    expect(canonicalJson({ "\ufb33": 1, "\ud83d\ude00": 2 })).toBe('{"\ud83d\ude00":2,"\ufb33":1}');
  });

  // Appendix B: IEEE 754 bit patterns and their canonical text.
  const NUMBERS: [string, string][] = [
    ["0000000000000000", "0"],
    ["8000000000000000", "0"],
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ];
  it.each(NUMBERS)("writes the number 0x%s as %s (Appendix B)", (bits, text) => {
    expect(canonicalJson(double(bits))).toBe(text);
    expect(canonicalJson({ n: double(bits) })).toBe(`{"n":${text}}`);
  });

  it.each([
    ["NaN (7fffffffffffffff)", double("7fffffffffffffff")],
    ["Infinity (7ff0000000000000)", double("7ff0000000000000")],
    ["-Infinity", Number.NEGATIVE_INFINITY],
  ])("rejects %s", (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
    expect(() => canonicalJson({ a: [1, value] })).toThrow(/\$\["a"\]\[1\]/);
  });

  it("escapes strings as JSON.stringify does", () => {
    const all = `${Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join("")}\u2028\u2029\u00e9\ud83d\ude00`;
    expect(canonicalJson(all)).toBe(JSON.stringify(all));
    expect(canonicalJson("\u0000\u001f\u007f")).toBe('"\\u0000\\u001f\u007f"');
    expect(canonicalJson('\b\t\n\f\r"\\/')).toBe('"\\b\\t\\n\\f\\r\\"\\\\/"');
  });

  it("writes nested values without whitespace, drops undefined members and keeps empty containers", () => {
    const value = { b: [1, { z: null, a: "x" }, []], a: {}, c: undefined, d: false, e: -0, f: 1.5e-7 };
    expect(canonicalJson(value)).toBe('{"a":{},"b":[1,{"a":"x","z":null},[]],"d":false,"e":0,"f":1.5e-7}');
    expect(canonicalJson(Object.assign(Object.create(null), { y: 1, x: 2 }))).toBe('{"x":2,"y":1}');
    expect(canonicalJson("")).toBe('""');
    expect(canonicalJson([])).toBe("[]");
    // Member order of the input never matters.
    expect(canonicalJson({ a: 1, b: { c: 2, d: 3 } })).toBe(canonicalJson({ b: { d: 3, c: 2 }, a: 1 }));
  });

  it("rejects what is not I-JSON, naming where", () => {
    const bad: [unknown, RegExp][] = [
      [{ a: "\ud800" }, /\$\["a"\] contains a lone surrogate/],
      [{ "\udc00": 1 }, /lone surrogate/],
      [[1, undefined], /\$\[1\] is undefined/],
      [undefined, /\$ is undefined/],
      [{ a: 10n }, /is a bigint/],
      [{ a: () => 1 }, /is a function/],
      [{ a: Symbol("s") }, /is a symbol/],
      [{ when: new Date(0) }, /Date, not a plain object/],
      [{ bytes: new Uint8Array(2) }, /Uint8Array, not a plain object/],
      [new Map(), /Map, not a plain object/],
    ];
    for (const [value, message] of bad) expect(() => canonicalJson(value as JsonValue)).toThrow(message);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic as JsonValue)).toThrow(/cyclic/);
    // A shared (non-cyclic) reference is fine.
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });

  it("hashes entries over their canonical bytes", () => {
    const entry = { index: "3", action: "tenancy.projects.create", metadata: { b: 2, a: 1 } };
    expect(hex(entryLeafHash(entry))).toBe(hex(leafHash(canonicalBytes(entry))));
    expect(hex(entryLeafHash(entry))).toBe(
      hex(entryLeafHash({ metadata: { a: 1, b: 2 }, action: "tenancy.projects.create", index: "3" })),
    );
    expect(new TextDecoder().decode(canonicalBytes({ é: "€" }))).toBe('{"é":"€"}');
  });
});
