/**
 * The fast acceptance predicates of CheckRequest and BatchCheckRequest are sound: on
 * thousands of generated messages (valid ones and every kind of near miss) they never
 * accept what protovalidate rejects, and they accept the valid ones (or they would not be
 * fast). Through the server, an invalid check still gets protovalidate's violations.
 */
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { describe, expect, it } from "@jest/globals";
import {
  BatchCheckRequestSchema,
  CheckRequestSchema,
} from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { fastAcceptFor, schemaRegexMatch } from "@uab/server";
import { registerDecisionValidators } from "../src/index.js";

registerDecisionValidators();
const validator = createValidator({ regexMatch: schemaRegexMatch });

let seed = 7;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
/** Mostly the first (valid) value, sometimes any of them: most generated messages are near misses of valid ones. */
const mostly = <T>(xs: readonly T[]): T => (rand(5) === 0 ? pick(xs) : xs[0]!);

const TAIL = "0123456789abcdefghjkmnpqrs";
const T = `ten_${TAIL}`;
const T2 = `ten_${TAIL.slice(1)}z`;
const ids = (prefix: string) => [`${prefix}_${TAIL}`, `${prefix}_${TAIL}x`, `${prefix}_${TAIL.toUpperCase()}`, ""];
const TENANTS = [T, T, T2, "", "ten_x", `ten_${TAIL}\n`];
const PRINCIPAL_IDS = [...ids("usr"), ...ids("team"), ...ids("sa"), ...ids("key"), `prj_${TAIL}`];
const PERMISSIONS = ["tenancy.projects.get", "a.b.c", "a.b.c.d", "a.b.c.d.e", "a.b", "A.b.c", "tenancy.projects.*", ""];
const PROJECTS = [`prj_${TAIL}`, "", "prj_x"];
const TEAMS = [`team_${TAIL}`, "", "team_x"];
const TYPES = ["tenancy.project", "x", "tenancy.Project", ""];

function principal() {
  if (rand(20) === 0) return undefined;
  const type = rand(5) === 0 ? rand(7) - 1 : 1 + rand(4);
  const prefix = ["usr", "team", "sa", "key"][(type - 1 + 4) % 4]!;
  const id = rand(5) === 0 ? pick(PRINCIPAL_IDS) : `${prefix}_${TAIL}`;
  return { type, id, tenantId: mostly(["", T, "ten_bad"]) };
}

function scope(tenantId: string) {
  if (rand(20) === 0) return undefined;
  const type = rand(5) === 0 ? rand(6) : 2 + rand(3);
  return {
    type,
    tenantId: rand(5) === 0 ? pick(TENANTS) : tenantId,
    projectId: type === 3 ? mostly(PROJECTS) : rand(5) === 0 ? pick(PROJECTS) : "",
    teamId: type === 4 ? mostly(TEAMS) : rand(5) === 0 ? pick(TEAMS) : "",
  };
}

function resource() {
  return rand(2) === 0 ? undefined : { type: mostly(TYPES), id: mostly(["r1", "", "x".repeat(65)]) };
}

function item(tenantId: string) {
  return {
    correlationId: mostly(["c1", "", "x".repeat(65)]),
    principal: principal(),
    permission: mostly(PERMISSIONS),
    scope: scope(tenantId),
    resource: resource(),
  };
}

function validCheck() {
  return create(CheckRequestSchema, {
    tenantId: T,
    principal: { type: 1, id: `usr_${TAIL}`, tenantId: T },
    permission: "tenancy.projects.get",
    scope: { type: 3, tenantId: T, projectId: `prj_${TAIL}` },
    resource: { type: "tenancy.project", id: "p1" },
  });
}

describe("fast acceptance of decision requests", () => {
  const acceptCheck = fastAcceptFor(CheckRequestSchema.typeName)!;
  const acceptBatch = fastAcceptFor(BatchCheckRequestSchema.typeName)!;

  it("accepts valid requests", () => {
    expect(acceptCheck(validCheck())).toBe(true);
    for (const type of [2, 4]) {
      const m = validCheck();
      m.scope = create(CheckRequestSchema.field.scope.message!, {
        type,
        tenantId: T,
        ...(type === 4 ? { teamId: `team_${TAIL}` } : {}),
      }) as never;
      expect(validator.validate(CheckRequestSchema, m).kind).toBe("valid");
      expect(acceptCheck(m)).toBe(true);
    }
    const batch = create(BatchCheckRequestSchema, {
      tenantId: T,
      checks: Array.from({ length: 500 }, (_, i) => {
        const { principal, permission, scope, resource } = validCheck();
        return { correlationId: `c${i}`, principal, permission, scope, resource };
      }),
    });
    expect(validator.validate(BatchCheckRequestSchema, batch).kind).toBe("valid");
    expect(acceptBatch(batch)).toBe(true);
  });

  it("never accepts a CheckRequest protovalidate rejects", () => {
    let accepted = 0;
    let rejected = 0;
    for (let i = 0; i < 5000; i++) {
      const tenantId = mostly(TENANTS);
      const m = create(CheckRequestSchema, {
        ...item(tenantId),
        tenantId,
        minRevision: mostly(["", "ten_x@1", "x".repeat(257)]),
      });
      const valid = validator.validate(CheckRequestSchema, m).kind === "valid";
      const fast = acceptCheck(m);
      if (fast && !valid) throw new Error(`accepted an invalid request: ${JSON.stringify(m)}`);
      if (valid) accepted++;
      else rejected++;
      if (valid) expect(fast).toBe(true);
    }
    // The generator reaches both sides.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(500);
  });

  it("never accepts a BatchCheckRequest protovalidate rejects", () => {
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const tenantId = mostly(TENANTS);
      const good = rand(3) === 0;
      const m = create(BatchCheckRequestSchema, {
        tenantId,
        checks: Array.from({ length: rand(10) === 0 ? 0 : 1 + rand(3) }, () =>
          good
            ? {
                correlationId: "c",
                principal: { type: 1, id: `usr_${TAIL}` },
                permission: "tenancy.projects.get",
                scope: { type: 2, tenantId },
              }
            : item(tenantId),
        ),
      });
      const valid = validator.validate(BatchCheckRequestSchema, m).kind === "valid";
      const fast = acceptBatch(m);
      if (fast && !valid) throw new Error(`accepted an invalid batch: ${JSON.stringify(m)}`);
      if (valid) {
        accepted++;
        expect(fast).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(300);
  });
});
