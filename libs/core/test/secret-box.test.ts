/** SecretBox: sealing secrets at rest with a key ring, and MACs for signed links. */
import { describe, expect, it } from "@jest/globals";
import { ConfigError, loadConfig, SecretBox, secretBoxField } from "../src/index.js";

const key = (b: number) => Buffer.alloc(32, b);

describe("SecretBox", () => {
  it("opens what it sealed, only with the same context", () => {
    const box = new SecretBox([{ id: "k1", key: key(1) }]);
    const sealed = box.seal("whsec_abc", "ast_1");
    expect(sealed).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain("whsec_abc");
    expect(box.open(sealed, "ast_1")).toBe("whsec_abc");
    expect(() => box.open(sealed, "ast_2")).toThrow(/does not open/);
    // Two seals of the same value differ (random nonce).
    expect(box.seal("whsec_abc", "ast_1")).not.toBe(sealed);
  });

  it("refuses altered values and values sealed with a key it does not hold", () => {
    const box = new SecretBox([{ id: "k1", key: key(1) }]);
    const sealed = box.seal("secret", "row");
    const parts = sealed.split(".");
    const body = Buffer.from(parts[3]!, "base64url");
    body[0]! ^= 1;
    const altered = [...parts.slice(0, 3), body.toString("base64url")].join(".");
    expect(() => box.open(altered, "row")).toThrow(/does not open/);
    expect(() => box.open("v2.k1.x.y", "row")).toThrow(/not a sealed secret/);
    const other = new SecretBox([{ id: "k9", key: key(9) }]);
    expect(() => other.open(sealed, "row")).toThrow(/k1, which is not in UAB_ENCRYPTION_KEYS/);
  });

  it("rotates: a new first key seals, older keys still open, stale values are told apart", () => {
    const old = new SecretBox([{ id: "k1", key: key(1) }]);
    const sealedOld = old.seal("v", "r");
    const ring = new SecretBox([
      { id: "k2", key: key(2) },
      { id: "k1", key: key(1) },
    ]);
    expect(ring.open(sealedOld, "r")).toBe("v");
    expect(ring.isStale(sealedOld)).toBe(true);
    const sealedNew = ring.seal("v", "r");
    expect(sealedNew.split(".")[1]).toBe("k2");
    expect(ring.isStale(sealedNew)).toBe(false);
    expect(() => old.open(sealedNew, "r")).toThrow(/k2/);
  });

  it("MACs are bound to data and purpose and verify under any key of the ring", () => {
    const box = new SecretBox([{ id: "k1", key: key(1) }]);
    const mac = box.mac("ten_1/exp_1/1700000000", "download");
    expect(box.verifyMac("ten_1/exp_1/1700000000", "download", mac)).toBe(true);
    expect(box.verifyMac("ten_1/exp_1/1700000001", "download", mac)).toBe(false);
    expect(box.verifyMac("ten_1/exp_1/1700000000", "other", mac)).toBe(false);
    expect(box.verifyMac("ten_1/exp_1/1700000000", "download", `${mac}x`)).toBe(false);
    expect(box.verifyMac("ten_1/exp_1/1700000000", "download", "k9.abc")).toBe(false);
    expect(box.verifyMac("ten_1/exp_1/1700000000", "download", "nodot")).toBe(false);
    const rotated = new SecretBox([
      { id: "k2", key: key(2) },
      { id: "k1", key: key(1) },
    ]);
    expect(rotated.verifyMac("ten_1/exp_1/1700000000", "download", mac)).toBe(true);
  });

  it("parses rings from configuration and names the variable when it is missing or bad", () => {
    const text = `${SecretBox.generate("a")},${SecretBox.generate("b")}`;
    const box = SecretBox.parse(text);
    expect(box.seal("x", "c").split(".")[1]).toBe("a");
    const fields = { UAB_ENCRYPTION_KEYS: secretBoxField("keys") };
    expect(loadConfig(fields, { UAB_ENCRYPTION_KEYS: text }).UAB_ENCRYPTION_KEYS).toBeInstanceOf(SecretBox);
    expect(() => loadConfig(fields, {})).toThrow(ConfigError);
    expect(() => loadConfig(fields, {})).toThrow(/UAB_ENCRYPTION_KEYS is required/);
    expect(() => loadConfig(fields, { UAB_ENCRYPTION_KEYS: "k1:c2hvcnQ=" })).toThrow(/must be 32 bytes/);
    expect(() => loadConfig(fields, { UAB_ENCRYPTION_KEYS: "nocolon" })).toThrow(/<key id>:<base64 key>/);
    expect(() => loadConfig(fields, { UAB_ENCRYPTION_KEYS: `bad id:${key(1).toString("base64")}` })).toThrow(/key id/);
  });
});
