/** Child processes of the benchmarks: h2load, and the load clients that must not share the server's event loop. */
import { spawn } from "node:child_process";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * Runs `command` with `args` to its end and resolves with what it printed on stdout; rejects
 * when it cannot be started or exits other than 0 (naming it `name`, by default the command,
 * with its stderr, else its stdout). With `input`, writes it to the child's stdin and closes
 * it; without, the child has no stdin.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  o: { input?: string; name?: string } = {},
): Promise<string> {
  const { input, name = basename(command) } = o;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => {
      out += d;
    });
    child.stderr!.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${name} exited ${code}: ${err || out}`)),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * Runs a load client, the compiled `script` of this folder (its body a `loadClientMain` of load.ts),
 * in a Node process of its own: `options` go to it as JSON on stdin, the result is the JSON of
 * the last line it prints.
 */
export async function runLoadClient<O, R>(script: string, options: O): Promise<R> {
  const out = await runCommand(process.execPath, [join(HERE, script)], {
    input: JSON.stringify(options),
    name: script,
  });
  return JSON.parse(out.trim().split("\n").pop()!) as R;
}
