/**
 * @packageDocumentation
 * Signed, retried HTTP delivery with Standard Webhooks signatures, for the audit service's
 * SIEM streams and the notification service's webhooks:
 *
 * - signature.ts: `whsec_` secrets, the `webhook-id` / `webhook-timestamp` /
 *   `webhook-signature` headers (several signatures while a secret rotation overlaps) and a
 *   verifier for inbound requests and tests;
 * - address.ts: the SSRF guard's rules: which addresses and URLs may be delivered to;
 * - deliver.ts: one signed POST, classified into ok / retryable / gone, never throwing for a
 *   failed delivery;
 * - retry.ts: the backoff schedule (exponential, full jitter, honoring `Retry-After`) and
 *   short in-process retries;
 * - breaker.ts: one circuit breaker per endpoint origin.
 *
 * The library holds no state beyond the breakers: a delivery worker keeps the queue, the
 * attempt counts and the next attempt times, and asks this package what to send and when.
 */
export {
  type AddressClass,
  checkEndpointUrl,
  classifyAddress,
  type EndpointUrlCheck,
  type EndpointUrlOptions,
} from "./address.js";
export * from "./breaker.js";
export * from "./deliver.js";
export * from "./retry.js";
export * from "./signature.js";
