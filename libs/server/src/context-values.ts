import { createContextKey } from "@connectrpc/connect";
import type { Principal, RequestContext } from "@uab/core";

/** The request context (id, tenant, principal, client address) of the current RPC. */
export const kRequestContext = createContextKey<RequestContext | undefined>(undefined, {
  description: "uab request context",
});

/** The authenticated principal of the current RPC (undefined for public RPCs). */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "uab principal" });

/** The client's address, filled in by the server from the socket. */
export const kRemoteAddress = createContextKey<string | undefined>(undefined, { description: "uab remote address" });
