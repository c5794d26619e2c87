/** The SSO and SCIM RPCs, implemented in sso.ts and scim/ and wired into both services. */
import type { ServiceImpl } from "@connectrpc/connect";
import type { AuthenticationService } from "@uab/proto/gen/uab/identity/v1/authentication_service_pb.js";
import type { IdentityService } from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";

/** SSO and SCIM RPC implementations. */
export type SsoHandlers = Pick<
  ServiceImpl<typeof AuthenticationService>,
  "startSsoLogin" | "completeOidcLogin" | "completeSamlLogin" | "getSamlServiceProviderMetadata"
> &
  Pick<
    ServiceImpl<typeof IdentityService>,
    | "createSsoConnection"
    | "getSsoConnection"
    | "listSsoConnections"
    | "updateSsoConnection"
    | "deleteSsoConnection"
    | "verifySsoDomain"
    | "createScimDirectory"
    | "getScimDirectory"
    | "listScimDirectories"
    | "updateScimDirectory"
    | "deleteScimDirectory"
    | "rotateScimToken"
  >;
