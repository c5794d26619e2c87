import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { DomainError, isClientError, type Logger } from "@uab/core";
import { BadRequestSchema, ErrorInfoSchema } from "@uab/proto/gen/google/rpc/error_details_pb.js";

/** The `domain` of every `google.rpc.ErrorInfo` UAB sends. */
export const ERROR_DOMAIN = "uab.dev";

/**
 * Turns any error into the Connect error a client sees. This is the only place errors are
 * mapped: a {@link DomainError} keeps its code and message and gains a
 * `google.rpc.ErrorInfo` (reason, metadata) and, for field problems, a
 * `google.rpc.BadRequest`; a ConnectError raised by the framework (size limits, malformed
 * bytes) passes through; anything else becomes `INTERNAL` with the request id and no
 * internals.
 */
export function toConnectError(err: unknown, requestId: string): ConnectError {
  if (err instanceof DomainError) {
    const details = [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, { reason: err.reason, domain: ERROR_DOMAIN, metadata: err.metadata }),
      },
    ];
    if (err.violations.length > 0) {
      details.push({
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description })),
        }),
      } as never);
    }
    return new ConnectError(err.message, err.code, undefined, details);
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError(`internal error (request ${requestId})`, Code.Internal);
}

/** Options for {@link errorInterceptor}. */
export interface ErrorInterceptorOptions {
  /** Where unexpected errors are logged with their stack. */
  readonly logger: Logger;
  /** The current request id (read from context values by the caller). */
  readonly requestId: (ctx: { contextValues: import("@connectrpc/connect").ContextValues }) => string;
}

/**
 * Maps thrown errors with {@link toConnectError} and logs them at the level they deserve:
 * client mistakes at info, everything else at error with the cause.
 */
export function errorInterceptor(options: ErrorInterceptorOptions): Interceptor {
  return (next) => async (req) => {
    const fail = (err: unknown): ConnectError => {
      const requestId = options.requestId(req);
      const mapped = toConnectError(err, requestId);
      const method = `${req.service.typeName}/${req.method.name}`;
      if (isClientError(mapped.code)) {
        options.logger.info(
          {
            method,
            code: Code[mapped.code],
            reason: err instanceof DomainError ? err.reason : undefined,
            msg: mapped.rawMessage,
          },
          "rpc rejected",
        );
      } else {
        options.logger.error({ method, code: Code[mapped.code], err }, "rpc failed");
      }
      return mapped;
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw fail(err);
    }
    if (!res.stream) return res;
    // A streaming handler fails while it is iterated: map and log those errors too.
    const source = res.message;
    const mapped = (async function* () {
      try {
        yield* source;
      } catch (err) {
        throw fail(err);
      }
    })();
    return { ...res, message: mapped } as typeof res;
  };
}
