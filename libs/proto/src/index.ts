/**
 * @packageDocumentation
 * UAB's protobuf contracts. Generated messages and services live under `@uab/proto/gen/…`;
 * this entry point adds what every service needs on top: the registry of all contract
 * files (for reflection, `Any` payloads and the permission catalogue) and typed access to
 * the `uab.options.v1.access` method option.
 */
import { createRegistry, type DescFile, type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { file_uab_events_v1_event } from "./gen/uab/events/v1/event_pb.js";
import { type Access, access, file_uab_options_v1_options, Scope } from "./gen/uab/options/v1/options_pb.js";
import { file_uab_tenancy_v1_events } from "./gen/uab/tenancy/v1/events_pb.js";
import { file_uab_tenancy_v1_tenancy_service } from "./gen/uab/tenancy/v1/tenancy_service_pb.js";

export { type Access, Scope } from "./gen/uab/options/v1/options_pb.js";

/** Every UAB contract file, in dependency order. New services add their files here. */
export const contractFiles: readonly DescFile[] = [
  file_uab_options_v1_options,
  file_uab_events_v1_event,
  file_uab_tenancy_v1_tenancy_service,
  file_uab_tenancy_v1_events,
];

/** A registry of all contract files and their imports: resolves `Any` payloads and feeds gRPC reflection. */
export const contractRegistry = createRegistry(...contractFiles);

/** All services declared by the contracts. */
export function contractServices(): DescService[] {
  return contractFiles.flatMap((f) => f.services);
}

/**
 * The access rule declared on an RPC. Throws when the RPC declares none: every UAB RPC must
 * say who may call it, and an undeclared one must never be served.
 */
export function accessOf(method: DescMethod): Access {
  if (!hasOption(method, access)) {
    throw new Error(`${method.parent.typeName}.${method.name} declares no (uab.options.v1.access) option`);
  }
  return getOption(method, access);
}

/** The request field that names the resource at `scope`, or undefined for the platform scope. */
export function scopeFields(scope: Scope): string[] {
  switch (scope) {
    case Scope.TENANT:
      return ["tenant_id"];
    case Scope.PROJECT:
      return ["tenant_id", "project_id"];
    case Scope.TEAM:
      return ["tenant_id", "team_id"];
    default:
      return [];
  }
}
