/** The gRPC wire format, by hand: what h2load sends, and a one-shot check of what comes back. */
import { connect } from "node:http2";

/** A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** The request headers h2load sends for gRPC. */
export function grpcHeaders(token?: string): Record<string, string> {
  return {
    "content-type": "application/grpc",
    te: "trailers",
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
}

/** What one raw call returned. */
export interface RawGrpcResult {
  readonly httpStatus: number;
  /** grpc-status from the trailers (or the headers, for trailers-only responses). */
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  /** The response message bytes (frame header stripped). */
  readonly message: Buffer;
}

/**
 * Sends exactly the bytes and headers h2load will send, over a fresh HTTP/2 connection,
 * and reads grpc-status: h2load only counts HTTP statuses, and gRPC errors are HTTP 200.
 */
export function rawGrpcCall(url: string, body: Uint8Array, headers: Record<string, string>): Promise<RawGrpcResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const session = connect(u.origin);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": u.pathname, ...headers });
    const chunks: Buffer[] = [];
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const take = (h: Record<string, unknown>) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    stream.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      take(h);
    });
    stream.on("trailers", take);
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      const all = Buffer.concat(chunks);
      resolve({ httpStatus, grpcStatus, grpcMessage, message: all.length >= 5 ? all.subarray(5) : all });
    });
    stream.end(body);
  });
}

/** Throws unless the raw call succeeded with grpc-status 0. */
export async function expectGrpcOk(url: string, body: Uint8Array, headers: Record<string, string>): Promise<Buffer> {
  const r = await rawGrpcCall(url, body, headers);
  if (r.httpStatus !== 200 || r.grpcStatus !== "0") {
    throw new Error(
      `${url}: HTTP ${r.httpStatus}, grpc-status ${r.grpcStatus ?? "missing"}${r.grpcMessage ? ` (${r.grpcMessage})` : ""}`,
    );
  }
  return r.message;
}
