import { Writable } from "node:stream";
import { describe, expect, it } from "@jest/globals";
import {
  ConfigError,
  createLogger,
  env,
  ID_PREFIXES,
  InvalidArgumentError,
  isId,
  loadConfig,
  newId,
  runWithRequestContext,
} from "@uab/core";

describe("ids", () => {
  it("are prefixed, well-formed and strictly increasing within a process", () => {
    const ids = Array.from({ length: 5000 }, () => newId("tenant"));
    for (const id of ids) expect(isId("tenant", id)).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("sort by creation time across milliseconds", async () => {
    const a = newId("project");
    await new Promise((r) => setTimeout(r, 3));
    const b = newId("project");
    expect(a < b).toBe(true);
  });

  it("tell kinds apart and reject malformed values", () => {
    expect(isId("project", newId("tenant"))).toBe(false);
    expect(isId("tenant", "ten_short")).toBe(false);
    expect(isId("tenant", `ten_${"u".repeat(26)}`)).toBe(false); // u is not Crockford base32
  });

  it("have unique prefixes", () => {
    const prefixes = Object.values(ID_PREFIXES);
    expect(new Set(prefixes).size).toBe(prefixes.length);
  });
});

describe("config", () => {
  const fields = {
    PORT: env.port("port", 8080),
    NAME: env.string("name"),
    DEBUG: env.bool("debug", false),
    URL: env.optionalUrl("url", ["postgres"]),
    LEVEL: env.oneOf("level", ["info", "debug"], "info"),
  };

  it("parses and applies defaults", () => {
    expect(loadConfig(fields, { NAME: "x", DEBUG: "yes", URL: "postgres://h/db" })).toEqual({
      PORT: 8080,
      NAME: "x",
      DEBUG: true,
      URL: "postgres://h/db",
      LEVEL: "info",
    });
  });

  it.each([
    [{ NAME: "x", PORT: "80a" }, "PORT", "must be an integer"],
    [{ NAME: "x", PORT: "70000" }, "PORT", "between 0 and 65535"],
    [{}, "NAME", "is required"],
    [{ NAME: "x", DEBUG: "maybe" }, "DEBUG", "true or false"],
    [{ NAME: "x", URL: "mysql://h" }, "URL", "must use one of postgres"],
    [{ NAME: "x", URL: "not a url" }, "URL", "must be a URL"],
    [{ NAME: "x", LEVEL: "loud" }, "LEVEL", "must be one of info, debug"],
  ])("names the bad variable (%j)", (input, variable, problem) => {
    let err: unknown;
    try {
      loadConfig(fields, input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).toContain(variable);
    expect((err as ConfigError).message).toContain(problem);
  });
});

describe("logger", () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    return { lines, logger: createLogger({ service: "test", destination }) };
  }

  it("redacts secrets and tokens", () => {
    const { lines, logger } = capture();
    logger.info(
      {
        password: "hunter2",
        req: { headers: { authorization: "Bearer abc" } },
        body: { refreshToken: "r", clientSecret: "s" },
        ok: "visible",
      },
      "x",
    );
    const line = JSON.stringify(lines[0]);
    expect(line).not.toContain("hunter2");
    expect(line).not.toContain("Bearer abc");
    expect(line).not.toContain('"r"');
    expect(line).not.toContain('"s"');
    expect(line).toContain("visible");
    expect(line).toContain("[redacted]");
  });

  it("adds request and tenant ids inside a request", () => {
    const { lines, logger } = capture();
    runWithRequestContext({ requestId: "req_1", tenantId: "ten_1" }, () => logger.info("inside"));
    logger.info("outside");
    expect(lines[0]).toMatchObject({ service: "test", request_id: "req_1", tenant_id: "ten_1", msg: "inside" });
    expect(lines[1]?.request_id).toBeUndefined();
  });
});

describe("errors", () => {
  it("field errors name the field in message and violations", () => {
    const e = InvalidArgumentError.field("slug", "is taken");
    expect(e.message).toBe("slug: is taken");
    expect(e.violations).toEqual([{ field: "slug", description: "is taken" }]);
  });
});
