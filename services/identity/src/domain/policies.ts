/**
 * Per-tenant login and MFA policies. A tenant that never set one gets the defaults, so the
 * row only exists once an administrator changed something.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "@uab/core";
import { LoginPolicyUpdatedSchema, MfaPolicyUpdatedSchema } from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import type {
  UpdateLoginPolicyRequest,
  UpdateMfaPolicyRequest,
} from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import { type LoginPolicy, LoginPolicySchema } from "@uab/proto/gen/uab/identity/v1/login_policy_pb.js";
import { MfaFactorType } from "@uab/proto/gen/uab/identity/v1/mfa_pb.js";
import { MfaEnforcement, type MfaPolicy, MfaPolicySchema } from "@uab/proto/gen/uab/identity/v1/mfa_policy_pb.js";
import type { LoginPolicyJson, MfaPolicyJson } from "../storage/tables.js";
import { checkEtag, emit, type IdentityDeps, inTenant, nextRevision, requireActiveTenant, type Tx } from "./common.js";

/** The login policy of a tenant that never set one. */
export const DEFAULT_LOGIN_POLICY: LoginPolicyJson = {
  lockoutThreshold: 10,
  lockoutDurationSeconds: 15 * 60,
  sessionIdleTimeoutSeconds: 14 * 86_400,
  sessionAbsoluteTimeoutSeconds: 30 * 86_400,
  allowSignUp: false,
  signUpEmailDomains: [],
  passwordLoginEnabled: true,
  passwordMinLength: 8,
};

/** The MFA policy of a tenant that never set one. */
export const DEFAULT_MFA_POLICY: MfaPolicyJson = {
  enforcement: "off",
  stepUpMaxAgeSeconds: 300,
  enrollmentGracePeriodSeconds: 7 * 86_400,
  allowedFactorTypes: ["totp", "recovery_code"],
};

/** The tenant's login policy (defaults when unset). */
export async function loginPolicy(tx: Tx, tenantId: string): Promise<LoginPolicyJson> {
  const row = await tx
    .selectFrom("login_policies")
    .select("policy")
    .where("tenant_id", "=", tenantId)
    .executeTakeFirst();
  return { ...DEFAULT_LOGIN_POLICY, ...(row?.policy ?? {}) };
}

/** The tenant's MFA policy (defaults when unset). */
export async function mfaPolicy(tx: Tx, tenantId: string): Promise<MfaPolicyJson> {
  const row = await tx.selectFrom("mfa_policies").select("policy").where("tenant_id", "=", tenantId).executeTakeFirst();
  return { ...DEFAULT_MFA_POLICY, ...(row?.policy ?? {}) };
}

const ENFORCEMENT: Record<MfaPolicyJson["enforcement"], MfaEnforcement> = {
  off: MfaEnforcement.OFF,
  required_for_admins: MfaEnforcement.REQUIRED_FOR_ADMINS,
  required_for_all: MfaEnforcement.REQUIRED_FOR_ALL,
};
const FACTOR: Record<"totp" | "recovery_code", MfaFactorType> = {
  totp: MfaFactorType.TOTP,
  recovery_code: MfaFactorType.RECOVERY_CODE,
};

function loginToProto(tenantId: string, p: LoginPolicyJson, revision: string, updated?: Date): LoginPolicy {
  return create(LoginPolicySchema, {
    tenantId,
    lockoutThreshold: p.lockoutThreshold,
    lockoutDuration: durationFromMs(p.lockoutDurationSeconds * 1000),
    sessionIdleTimeout: durationFromMs(p.sessionIdleTimeoutSeconds * 1000),
    sessionAbsoluteTimeout: durationFromMs(p.sessionAbsoluteTimeoutSeconds * 1000),
    allowSignUp: p.allowSignUp,
    signUpEmailDomains: p.signUpEmailDomains,
    passwordLoginEnabled: p.passwordLoginEnabled,
    passwordMinLength: p.passwordMinLength,
    updateTime: updated ? timestampFromDate(updated) : undefined,
    etag: revision,
  });
}

function mfaToProto(tenantId: string, p: MfaPolicyJson, revision: string, updated?: Date): MfaPolicy {
  return create(MfaPolicySchema, {
    tenantId,
    enforcement: ENFORCEMENT[p.enforcement],
    stepUpMaxAge: durationFromMs(p.stepUpMaxAgeSeconds * 1000),
    enrollmentGracePeriod: durationFromMs(p.enrollmentGracePeriodSeconds * 1000),
    allowedFactorTypes: p.allowedFactorTypes.map((t) => FACTOR[t]),
    updateTime: updated ? timestampFromDate(updated) : undefined,
    etag: revision,
  });
}

const seconds = (d: { seconds: bigint; nanos: number } | undefined) =>
  d ? Number(d.seconds) + (d.nanos > 0 ? 1 : 0) : 0;

/** GetLoginPolicy. */
export function getLoginPolicy(deps: IdentityDeps, tenantId: string): Promise<LoginPolicy> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await tx.selectFrom("login_policies").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
    return loginToProto(
      tenantId,
      { ...DEFAULT_LOGIN_POLICY, ...(row?.policy ?? {}) },
      row?.revision ?? "0",
      row?.updated_at,
    );
  });
}

/** GetMfaPolicy. */
export function getMfaPolicy(deps: IdentityDeps, tenantId: string): Promise<MfaPolicy> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await tx.selectFrom("mfa_policies").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
    return mfaToProto(
      tenantId,
      { ...DEFAULT_MFA_POLICY, ...(row?.policy ?? {}) },
      row?.revision ?? "0",
      row?.updated_at,
    );
  });
}

/** UpdateLoginPolicy: the masked fields, with the etag of the last read ("0" before the first change). */
export function updateLoginPolicy(deps: IdentityDeps, req: UpdateLoginPolicyRequest): Promise<LoginPolicy> {
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const row = await tx
      .selectFrom("login_policies")
      .selectAll()
      .where("tenant_id", "=", req.tenantId)
      .forUpdate()
      .executeTakeFirst();
    const revision = row?.revision ?? "0";
    checkEtag(req.etag, revision, "the login policy");
    const p: LoginPolicyJson = { ...DEFAULT_LOGIN_POLICY, ...(row?.policy ?? {}) };
    const paths = req.updateMask!.paths;
    for (const path of paths) {
      switch (path) {
        case "lockout_threshold":
          p.lockoutThreshold = req.lockoutThreshold;
          break;
        case "lockout_duration":
          p.lockoutDurationSeconds = seconds(req.lockoutDuration);
          break;
        case "session_idle_timeout":
          p.sessionIdleTimeoutSeconds = seconds(req.sessionIdleTimeout);
          break;
        case "session_absolute_timeout":
          p.sessionAbsoluteTimeoutSeconds = seconds(req.sessionAbsoluteTimeout);
          break;
        case "allow_sign_up":
          p.allowSignUp = req.allowSignUp;
          break;
        case "sign_up_email_domains":
          p.signUpEmailDomains = req.signUpEmailDomains.map((d) => d.toLowerCase());
          break;
        case "password_login_enabled":
          p.passwordLoginEnabled = req.passwordLoginEnabled;
          break;
        case "password_min_length":
          p.passwordMinLength = req.passwordMinLength || DEFAULT_LOGIN_POLICY.passwordMinLength;
          break;
      }
    }
    if (p.sessionIdleTimeoutSeconds > p.sessionAbsoluteTimeoutSeconds) {
      throw InvalidArgumentError.field("session_idle_timeout", "must not be longer than session_absolute_timeout");
    }
    const next = nextRevision(revision);
    const now = new Date();
    await tx
      .insertInto("login_policies")
      .values({ tenant_id: req.tenantId, policy: JSON.stringify(p), updated_at: now })
      .onConflict((oc) =>
        oc.column("tenant_id").doUpdateSet({ policy: JSON.stringify(p), revision: next, updated_at: now }),
      )
      .execute();
    const out = loginToProto(req.tenantId, p, row ? next : "1", now);
    await emit(tx, LoginPolicyUpdatedSchema, { loginPolicy: out, changedFields: paths }, req.tenantId, {
      type: "identity.login_policy",
      id: req.tenantId,
    });
    return out;
  });
}

const ENFORCEMENT_IN: Record<number, MfaPolicyJson["enforcement"]> = {
  [MfaEnforcement.OFF]: "off",
  [MfaEnforcement.REQUIRED_FOR_ADMINS]: "required_for_admins",
  [MfaEnforcement.REQUIRED_FOR_ALL]: "required_for_all",
};

/** UpdateMfaPolicy. */
export function updateMfaPolicy(deps: IdentityDeps, req: UpdateMfaPolicyRequest): Promise<MfaPolicy> {
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const row = await tx
      .selectFrom("mfa_policies")
      .selectAll()
      .where("tenant_id", "=", req.tenantId)
      .forUpdate()
      .executeTakeFirst();
    const revision = row?.revision ?? "0";
    checkEtag(req.etag, revision, "the MFA policy");
    const p: MfaPolicyJson = { ...DEFAULT_MFA_POLICY, ...(row?.policy ?? {}) };
    const paths = req.updateMask!.paths;
    for (const path of paths) {
      if (path === "enforcement") p.enforcement = ENFORCEMENT_IN[req.enforcement]!;
      if (path === "step_up_max_age") p.stepUpMaxAgeSeconds = seconds(req.stepUpMaxAge);
      if (path === "enrollment_grace_period") p.enrollmentGracePeriodSeconds = seconds(req.enrollmentGracePeriod);
      if (path === "allowed_factor_types") {
        const types = req.allowedFactorTypes.map((t): "totp" | "recovery_code" =>
          t === MfaFactorType.TOTP ? "totp" : "recovery_code",
        );
        if (!types.includes("totp")) {
          throw InvalidArgumentError.field(
            "allowed_factor_types",
            "must include MFA_FACTOR_TYPE_TOTP (recovery codes back up a TOTP factor)",
          );
        }
        p.allowedFactorTypes = types;
      }
    }
    const next = nextRevision(revision);
    const now = new Date();
    await tx
      .insertInto("mfa_policies")
      .values({ tenant_id: req.tenantId, policy: JSON.stringify(p), updated_at: now })
      .onConflict((oc) =>
        oc.column("tenant_id").doUpdateSet({ policy: JSON.stringify(p), revision: next, updated_at: now }),
      )
      .execute();
    const out = mfaToProto(req.tenantId, p, row ? next : "1", now);
    await emit(tx, MfaPolicyUpdatedSchema, { mfaPolicy: out, changedFields: paths }, req.tenantId, {
      type: "identity.mfa_policy",
      id: req.tenantId,
    });
    return out;
  });
}
