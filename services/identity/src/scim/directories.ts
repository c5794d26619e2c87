/**
 * SCIM directory management (the RPCs): a directory is one IdP's provisioning channel into a
 * tenant, with its own bearer token (shown once, stored as SHA-256, rotatable) and its SCIM
 * base URL `<public url>/scim/v2/<directory id>`.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { NotFoundError, newId } from "@uab/core";
import { decodePageToken, pageSize, paginate } from "@uab/db";
import {
  ScimDirectoryCreatedSchema,
  ScimDirectoryDeletedSchema,
  ScimDirectoryUpdatedSchema,
  ScimTokenRotatedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import {
  ScimDeprovisionAction,
  type ScimDirectory,
  ScimDirectorySchema,
} from "@uab/proto/gen/uab/identity/v1/scim_directory_pb.js";
import {
  checkEtag,
  emit,
  type IdentityDeps,
  inTenant,
  nextRevision,
  randomSecret,
  requireActiveTenant,
  sha256,
  type Tx,
} from "../domain/common.js";
import type { SsoHandlers } from "../domain/sso-port.js";
import type { ScimDirectoryRow } from "../storage/tables.js";

/** Prefix of SCIM bearer tokens (recognisable by secret scanners). */
export const SCIM_TOKEN_PREFIX = "uabscim_";

const resource = (r: Pick<ScimDirectoryRow, "id" | "display_name">) => ({
  type: "identity.scim_directory",
  id: r.id,
  displayName: r.display_name,
});

function newToken(): { token: string; hash: Buffer; hint: string } {
  const token = `${SCIM_TOKEN_PREFIX}${randomSecret()}`;
  return { token, hash: sha256(token), hint: token.slice(0, SCIM_TOKEN_PREFIX.length + 4) };
}

async function directoryRow(tx: Tx, id: string, lock = false): Promise<ScimDirectoryRow> {
  let q = tx.selectFrom("scim_directories").selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError("SCIM_DIRECTORY_NOT_FOUND", `SCIM directory ${id} not found`);
  return row;
}

async function checkConnection(tx: Tx, id: string): Promise<void> {
  if (!id) return;
  const row = await tx.selectFrom("sso_connections").select("id").where("id", "=", id).executeTakeFirst();
  if (!row)
    throw new NotFoundError("SSO_CONNECTION_NOT_FOUND", `SSO connection ${id} not found`, {
      violations: [{ field: "sso_connection_id", description: "names no SSO connection of this tenant" }],
    });
}

async function view(deps: IdentityDeps, tx: Tx, row: ScimDirectoryRow): Promise<ScimDirectory> {
  const users = await tx
    .selectFrom("users")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("scim_directory_id", "=", row.id)
    .where("deleted_at", "is", null)
    .executeTakeFirstOrThrow();
  const groups = await tx
    .selectFrom("scim_groups")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("directory_id", "=", row.id)
    .executeTakeFirstOrThrow();
  return create(ScimDirectorySchema, {
    id: row.id,
    tenantId: row.tenant_id,
    displayName: row.display_name,
    endpointUrl: `${deps.settings.publicUrl}/scim/v2/${row.id}`,
    ssoConnectionId: row.sso_connection_id ?? "",
    deprovisionAction:
      row.deprovision_action === "delete" ? ScimDeprovisionAction.DELETE : ScimDeprovisionAction.DISABLE,
    groupRoleMappings: row.group_role_mappings.map((g) => ({ group: g.group, roleId: g.roleId })),
    tokenHint: row.token_hint,
    tokenCreateTime: timestampFromDate(row.token_created_at),
    tokenLastUsedTime: row.token_last_used_at ? timestampFromDate(row.token_last_used_at) : undefined,
    userCount: Number(users.n),
    groupCount: Number(groups.n),
    lastSyncTime: row.last_sync_at ? timestampFromDate(row.last_sync_at) : undefined,
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    etag: row.revision,
  });
}

const action = (a: ScimDeprovisionAction) => (a === ScimDeprovisionAction.DELETE ? "delete" : "disable");

/** The SCIM directory RPCs. */
export function scimHandlers(
  deps: IdentityDeps,
): Pick<
  SsoHandlers,
  | "createScimDirectory"
  | "getScimDirectory"
  | "listScimDirectories"
  | "updateScimDirectory"
  | "deleteScimDirectory"
  | "rotateScimToken"
> {
  return {
    async createScimDirectory(req) {
      return inTenant(deps, req.tenantId, async (tx) => {
        await requireActiveTenant(tx, req.tenantId);
        await checkConnection(tx, req.ssoConnectionId);
        const t = newToken();
        const row = await tx
          .insertInto("scim_directories")
          .values({
            id: newId("scimDirectory"),
            tenant_id: req.tenantId,
            display_name: req.displayName,
            sso_connection_id: req.ssoConnectionId || null,
            deprovision_action: action(req.deprovisionAction),
            group_role_mappings: JSON.stringify(
              req.groupRoleMappings.map((g) => ({ group: g.group, roleId: g.roleId })),
            ),
            token_hash: t.hash,
            token_hint: t.hint,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const out = await view(deps, tx, row);
        await emit(tx, ScimDirectoryCreatedSchema, { scimDirectory: out }, req.tenantId, resource(row));
        return { scimDirectory: out, bearerToken: t.token };
      });
    },
    async getScimDirectory(req) {
      return inTenant(deps, req.tenantId, async (tx) => ({
        scimDirectory: await view(deps, tx, await directoryRow(tx, req.scimDirectoryId)),
      }));
    },
    async listScimDirectories(req) {
      const filters = { t: req.tenantId, c: req.ssoConnectionId };
      const after = decodePageToken(req.pageToken, filters);
      const size = pageSize(req.pageSize);
      return inTenant(deps, req.tenantId, async (tx) => {
        let q = tx.selectFrom("scim_directories").selectAll();
        if (req.ssoConnectionId) q = q.where("sso_connection_id", "=", req.ssoConnectionId);
        if (after) q = q.where("id", ">", after);
        const page = paginate(
          await q
            .orderBy("id")
            .limit(size + 1)
            .execute(),
          size,
          filters,
        );
        return {
          scimDirectories: await Promise.all(page.items.map((r) => view(deps, tx, r))),
          nextPageToken: page.next,
        };
      });
    },
    async updateScimDirectory(req) {
      const paths = req.updateMask!.paths;
      return inTenant(deps, req.tenantId, async (tx) => {
        await requireActiveTenant(tx, req.tenantId);
        const row = await directoryRow(tx, req.scimDirectoryId, true);
        checkEtag(req.etag, row.revision, `SCIM directory ${row.id}`);
        const set: Record<string, unknown> = {};
        if (paths.includes("display_name")) set.display_name = req.displayName;
        if (paths.includes("sso_connection_id")) {
          await checkConnection(tx, req.ssoConnectionId);
          set.sso_connection_id = req.ssoConnectionId || null;
        }
        if (paths.includes("deprovision_action")) set.deprovision_action = action(req.deprovisionAction);
        if (paths.includes("group_role_mappings")) {
          set.group_role_mappings = JSON.stringify(
            req.groupRoleMappings.map((g) => ({ group: g.group, roleId: g.roleId })),
          );
        }
        const updated = await tx
          .updateTable("scim_directories")
          .set({ ...set, revision: nextRevision(row.revision), updated_at: new Date() })
          .where("id", "=", row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const out = await view(deps, tx, updated);
        await emit(
          tx,
          ScimDirectoryUpdatedSchema,
          { scimDirectory: out, changedFields: paths },
          req.tenantId,
          resource(updated),
        );
        return { scimDirectory: out };
      });
    },
    async deleteScimDirectory(req) {
      await inTenant(deps, req.tenantId, async (tx) => {
        const row = await directoryRow(tx, req.scimDirectoryId, true);
        checkEtag(req.etag, row.revision, `SCIM directory ${row.id}`);
        const out = await view(deps, tx, row);
        await tx.deleteFrom("scim_directories").where("id", "=", row.id).execute();
        await emit(tx, ScimDirectoryDeletedSchema, { scimDirectory: out }, req.tenantId, resource(row));
      });
      return {};
    },
    async rotateScimToken(req) {
      return inTenant(deps, req.tenantId, async (tx) => {
        const row = await directoryRow(tx, req.scimDirectoryId, true);
        const t = newToken();
        const updated = await tx
          .updateTable("scim_directories")
          .set({
            token_hash: t.hash,
            token_hint: t.hint,
            token_created_at: new Date(),
            token_last_used_at: null,
            revision: nextRevision(row.revision),
            updated_at: new Date(),
          })
          .where("id", "=", row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const out = await view(deps, tx, updated);
        await emit(tx, ScimTokenRotatedSchema, { scimDirectory: out }, req.tenantId, resource(updated));
        return { scimDirectory: out, bearerToken: t.token };
      });
    },
  };
}
