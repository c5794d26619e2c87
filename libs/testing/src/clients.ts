/**
 * Connect clients of a test server (or a benchmark's): the bearer token the server's
 * authentication reads, and any other request headers a test needs (`idempotency-key`…).
 */
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";

/**
 * An interceptor that sets `authorization: Bearer <token>` on every request (none when
 * `token` is undefined or empty: an anonymous call), then each of `headers` (which may
 * replace the authorization header too). Give it to a transport's `interceptors`.
 */
export function bearer(token?: string, headers: Readonly<Record<string, string>> = {}): Interceptor {
  return (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
}

/** A service description, as `createClient` takes it (a generated `…Service`). */
type Service = Parameters<typeof createClient>[0];

/**
 * Makes a transport from the options {@link clientFactory} fills in: `createGrpcTransport` of
 * @connectrpc/connect-node as it is, or `(o) => createConnectTransport({ ...o, httpVersion: "2" })`.
 */
export type TransportFactory = (options: { baseUrl: string; interceptors: Interceptor[] }) => Transport;

/**
 * A maker of clients of the server at `baseUrl`: `make(Service, token, headers)` is a client
 * of `Service` on a transport of its own, made by `transport`, that sends
 * {@link bearer}`(token, headers)` with every call.
 */
export function clientFactory(
  baseUrl: string,
  transport: TransportFactory,
): <S extends Service>(service: S, token?: string, headers?: Readonly<Record<string, string>>) => Client<S> {
  return (service, token, headers) =>
    createClient(service, transport({ baseUrl, interceptors: [bearer(token, headers)] }));
}
