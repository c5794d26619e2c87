import { auditModule } from "@uab/audit";
import { authorizationModule } from "@uab/authorization";
import { identityModule } from "@uab/identity";
import type { ServiceModule } from "@uab/server";
import { tenancyModule } from "@uab/tenancy";

/**
 * Every service module UAB ships, in start order. New services are added here. Audit starts
 * first so its consumer is listening before the other services publish.
 */
export const MODULES: readonly ServiceModule[] = [auditModule, authorizationModule, tenancyModule, identityModule];

/** The modules named in a comma-separated list (all when empty); throws on an unknown name. */
export function selectModules(names: string | undefined, variable = "UAB_SERVICES"): ServiceModule[] {
  if (!names) return [...MODULES];
  return names.split(",").map((n) => {
    const m = MODULES.find((x) => x.name === n.trim());
    if (!m)
      throw new Error(
        `configuration error: ${variable} names unknown service "${n.trim()}" (known: ${MODULES.map((x) => x.name).join(", ")})`,
      );
    return m;
  });
}
