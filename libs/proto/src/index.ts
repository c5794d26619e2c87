/**
 * @packageDocumentation
 * UAB's protobuf contracts. Generated messages and services live under `@uab/proto/gen/…`;
 * this entry point adds what every service needs on top: the registry of all contract
 * files (for reflection, `Any` payloads and the permission catalogue) and typed access to
 * the `uab.options.v1.access` method option.
 */
import {
  createRegistry,
  type DescFile,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
} from "@bufbuild/protobuf";
import { allContractFiles } from "./gen/contracts.js";
import { type Access, access } from "./gen/uab/options/v1/options_pb.js";

export { type Access, Scope } from "./gen/uab/options/v1/options_pb.js";

/** Every UAB contract file (generated list: a new proto file is picked up by `make generate`). */
export const contractFiles: readonly DescFile[] = allContractFiles;

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
