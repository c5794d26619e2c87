/**
 * Second factors: TOTP enrolment (start → confirm with a first code, which also issues
 * recovery codes), verification with replay protection (a code's time step is remembered),
 * recovery codes (single use, regenerated as a set), and removal by the user (with step-up)
 * or an administrator. Removing the last factor or regenerating codes is an MFA change and
 * ends the user's other sessions.
 */
import { FailedPreconditionError, NotFoundError, newId } from "@uab/core";
import {
  MfaEnrolledSchema,
  MfaRemovedSchema,
  RecoveryCodesRegeneratedSchema,
  RecoveryCodeUsedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import type { MfaFactor } from "@uab/proto/gen/uab/identity/v1/mfa_pb.js";
import { mfaFactorToProto } from "../convert.js";
import type { MfaFactorRow } from "../storage/tables.js";
import { emit, getUserRow, type IdentityDeps, inTenant, type Tx } from "./common.js";
import { newRecoveryCodes, newTotpSecret, recoveryCodeHash, totpUri, verifyTotp } from "./otp.js";
import { endUserSessions } from "./sessions.js";

const resource = (f: Pick<MfaFactorRow, "id" | "type">) => ({
  type: "identity.mfa_factor",
  id: f.id,
  displayName: f.type,
});
const PENDING_TTL_MS = 15 * 60_000;

/** StartTotpEnrollment: a pending factor with a fresh secret (shown once, sealed at rest). */
export async function startTotpEnrollment(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  displayName: string,
  issuer: string,
): Promise<{ factor: MfaFactor; secret: string; uri: string }> {
  return inTenant(deps, tenantId, async (tx) => {
    const user = await getUserRow(tx, userId, { live: true });
    // Abandoned enrolments of this user go.
    await tx.deleteFrom("mfa_factors").where("user_id", "=", userId).where("state", "=", "pending").execute();
    const id = newId("mfaFactor");
    const secret = newTotpSecret();
    const row = await tx
      .insertInto("mfa_factors")
      .values({
        id,
        tenant_id: tenantId,
        user_id: userId,
        type: "totp",
        state: "pending",
        display_name: displayName || "Authenticator app",
        secret_sealed: deps.box.seal(secret, `mfa_factor:${id}`),
        expires_at: new Date(Date.now() + PENDING_TTL_MS),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return {
      factor: mfaFactorToProto(row),
      secret,
      uri: totpUri(secret, issuer, user.email ?? user.username ?? user.id),
    };
  });
}

async function issueRecoveryCodes(tx: Tx, tenantId: string, userId: string): Promise<string[]> {
  await tx.deleteFrom("mfa_factors").where("user_id", "=", userId).where("type", "=", "recovery_code").execute();
  const id = newId("mfaFactor");
  const now = new Date();
  await tx
    .insertInto("mfa_factors")
    .values({
      id,
      tenant_id: tenantId,
      user_id: userId,
      type: "recovery_code",
      state: "active",
      display_name: "Recovery codes",
      confirmed_at: now,
    })
    .execute();
  const codes = newRecoveryCodes();
  await tx
    .insertInto("recovery_codes")
    .values(codes.map((c) => ({ tenant_id: tenantId, factor_id: id, code_hash: recoveryCodeHash(id, c) })))
    .execute();
  return codes;
}

/** ConfirmTotpEnrollment: the first code proves the app has the secret; returns recovery codes when the user had none. */
export async function confirmTotpEnrollment(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  factorId: string,
  code: string,
): Promise<{ factor: MfaFactor; recoveryCodes: string[] }> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("id", "=", factorId)
      .where("user_id", "=", userId)
      .where("type", "=", "totp")
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("MFA_FACTOR_NOT_FOUND", `MFA factor ${factorId} not found`);
    if (row.state === "active")
      throw new FailedPreconditionError("MFA_FACTOR_ALREADY_CONFIRMED", "the factor is already confirmed");
    if (row.expires_at && row.expires_at <= new Date()) {
      throw new FailedPreconditionError("MFA_ENROLLMENT_EXPIRED", "the enrolment expired; start it again");
    }
    const secret = deps.box.open(row.secret_sealed!, `mfa_factor:${row.id}`);
    const step = verifyTotp(secret, code);
    if (step === undefined) {
      throw new FailedPreconditionError(
        "MFA_CODE_INVALID",
        "the code does not match; check the device's clock and try the current code",
        {
          violations: [{ field: "code", description: "does not match the authenticator's current code" }],
        },
      );
    }
    const now = new Date();
    const confirmed = await tx
      .updateTable("mfa_factors")
      .set({ state: "active", confirmed_at: now, last_used_at: now, last_used_step: String(step), expires_at: null })
      .where("id", "=", row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const hasCodes = await tx
      .selectFrom("mfa_factors")
      .select("id")
      .where("user_id", "=", userId)
      .where("type", "=", "recovery_code")
      .executeTakeFirst();
    const recoveryCodes = hasCodes ? [] : await issueRecoveryCodes(tx, tenantId, userId);
    const factor = mfaFactorToProto(confirmed);
    await emit(tx, MfaEnrolledSchema, { mfaFactor: factor }, tenantId, resource(confirmed));
    if (recoveryCodes.length > 0) {
      await emit(tx, RecoveryCodesRegeneratedSchema, { userId, codeCount: recoveryCodes.length }, tenantId, {
        type: "identity.user",
        id: userId,
      });
    }
    return { factor, recoveryCodes };
  });
}

/** Whether the user has a confirmed TOTP factor. */
export async function hasActiveTotp(tx: Tx, userId: string): Promise<boolean> {
  const row = await tx
    .selectFrom("mfa_factors")
    .select("id")
    .where("user_id", "=", userId)
    .where("type", "=", "totp")
    .where("state", "=", "active")
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Checks a second factor in `tx`: a TOTP code against every active TOTP factor (each code's
 * step is used once), or a recovery code (consumed). Returns the method (`otp` or `rc`), or
 * undefined when nothing matched.
 */
export async function checkSecondFactor(
  deps: IdentityDeps,
  tx: Tx,
  tenantId: string,
  userId: string,
  answer: { totpCode?: string | undefined; recoveryCode?: string | undefined },
): Promise<"otp" | "rc" | undefined> {
  const now = new Date();
  if (answer.totpCode) {
    const factors = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("user_id", "=", userId)
      .where("type", "=", "totp")
      .where("state", "=", "active")
      .forUpdate()
      .execute();
    for (const f of factors) {
      const secret = deps.box.open(f.secret_sealed!, `mfa_factor:${f.id}`);
      const step = verifyTotp(secret, answer.totpCode, {
        lastUsedStep: f.last_used_step === null ? undefined : Number(f.last_used_step),
      });
      if (step !== undefined) {
        await tx
          .updateTable("mfa_factors")
          .set({ last_used_step: String(step), last_used_at: now })
          .where("id", "=", f.id)
          .execute();
        return "otp";
      }
    }
    return undefined;
  }
  if (answer.recoveryCode) {
    const factor = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("user_id", "=", userId)
      .where("type", "=", "recovery_code")
      .forUpdate()
      .executeTakeFirst();
    if (!factor) return undefined;
    const used = await tx
      .updateTable("recovery_codes")
      .set({ used_at: now })
      .where("factor_id", "=", factor.id)
      .where("code_hash", "=", recoveryCodeHash(factor.id, answer.recoveryCode))
      .where("used_at", "is", null)
      .returning("factor_id")
      .executeTakeFirst();
    if (!used) return undefined;
    await tx.updateTable("mfa_factors").set({ last_used_at: now }).where("id", "=", factor.id).execute();
    const left = await tx
      .selectFrom("recovery_codes")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("factor_id", "=", factor.id)
      .where("used_at", "is", null)
      .executeTakeFirstOrThrow();
    await emit(tx, RecoveryCodeUsedSchema, { userId, remainingCount: Number(left.n) }, tenantId, {
      type: "identity.user",
      id: userId,
    });
    return "rc";
  }
  return undefined;
}

/** A user's factors and how many recovery codes are left. */
export async function listFactors(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
): Promise<{ factors: MfaFactor[]; recoveryCodesRemaining: number }> {
  return inTenant(deps, tenantId, async (tx) => {
    await getUserRow(tx, userId);
    const rows = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("user_id", "=", userId)
      .where((eb) => eb.or([eb("state", "=", "active"), eb("expires_at", ">", new Date())]))
      .orderBy("id")
      .execute();
    const left = await tx
      .selectFrom("recovery_codes")
      .innerJoin("mfa_factors", "mfa_factors.id", "recovery_codes.factor_id")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("mfa_factors.user_id", "=", userId)
      .where("recovery_codes.used_at", "is", null)
      .executeTakeFirstOrThrow();
    return { factors: rows.map(mfaFactorToProto), recoveryCodesRemaining: Number(left.n) };
  });
}

/**
 * Removes a factor. Removing the last TOTP factor also removes the recovery codes (they back
 * up a factor that no longer exists) and ends the user's other sessions.
 */
export async function deleteFactor(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  factorId: string,
  by: { administrator: boolean; reason: string; keepSession?: string | undefined },
): Promise<void> {
  await inTenant(deps, tenantId, async (tx) => {
    await getUserRow(tx, userId);
    const row = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("id", "=", factorId)
      .where("user_id", "=", userId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("MFA_FACTOR_NOT_FOUND", `MFA factor ${factorId} not found`);
    await tx.deleteFrom("mfa_factors").where("id", "=", row.id).execute();
    await emit(
      tx,
      MfaRemovedSchema,
      { mfaFactor: mfaFactorToProto(row), byAdministrator: by.administrator, reason: by.reason },
      tenantId,
      resource(row),
    );
    if (row.type === "totp" && row.state === "active" && !(await hasActiveTotp(tx, userId))) {
      const codes = await tx
        .deleteFrom("mfa_factors")
        .where("user_id", "=", userId)
        .where("type", "=", "recovery_code")
        .returningAll()
        .executeTakeFirst();
      if (codes) {
        await emit(
          tx,
          MfaRemovedSchema,
          { mfaFactor: mfaFactorToProto(codes), byAdministrator: by.administrator, reason: by.reason },
          tenantId,
          resource(codes),
        );
      }
      await endUserSessions(tx, userId, "mfa_changed", by.keepSession);
    }
  });
}

/** RegenerateRecoveryCodes: a new set replaces the old (all old codes stop working). */
export async function regenerateRecoveryCodes(deps: IdentityDeps, tenantId: string, userId: string): Promise<string[]> {
  return inTenant(deps, tenantId, async (tx) => {
    if (!(await hasActiveTotp(tx, userId))) {
      throw new FailedPreconditionError(
        "MFA_NOT_ENROLLED",
        "enrol an authenticator app before creating recovery codes",
      );
    }
    const codes = await issueRecoveryCodes(tx, tenantId, userId);
    await emit(tx, RecoveryCodesRegeneratedSchema, { userId, codeCount: codes.length }, tenantId, {
      type: "identity.user",
      id: userId,
    });
    return codes;
  });
}
