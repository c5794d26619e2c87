/**
 * The raw HTTP/2 floor: a bare `node:http2` server (the compatibility API, as the UAB server
 * uses it) that reads the request and answers a fixed 200. Whatever the RPC stack costs comes
 * on top of this.
 */
import { createServer } from "node:http2";
import type { AddressInfo } from "node:net";

/** A running floor server. */
export interface FloorServer {
  readonly url: string;
  close(): Promise<void>;
}

const BODY = Buffer.from([0, 0, 0, 0, 0]);

/** Starts the floor server on a free loopback port. */
export async function startFloorServer(): Promise<FloorServer> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/grpc" });
      res.end(BODY);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Sessions h2load left open would keep close() waiting.
        setTimeout(resolve, 1000).unref();
      }),
  };
}
