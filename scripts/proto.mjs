#!/usr/bin/env node
// Contract tooling: builds a protobuf image of proto/ and runs buf over it.
//
//   node scripts/proto.mjs image [out]      build the image (default build/uab.binpb)
//   node scripts/proto.mjs lint [dir...]    buf lint (STANDARD) over proto/ or some dirs
//   node scripts/proto.mjs generate         regenerate libs/proto/src/gen + deploy image
//   node scripts/proto.mjs check            regenerate and fail if anything changed
//   node scripts/proto.mjs breaking <ref>   buf breaking against a git ref (e.g. main)
//
// Why an image: buf/validate/validate.proto ships in no npm package and the Buf Schema
// Registry is unreachable, but @bufbuild/protovalidate exports the compiled descriptor.
// We serialise it as a FileDescriptorSet and let protoc compile proto/ against it, with
// google/api from google-proto-files; buf then lints and generates from that image.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const googleProtos = join(root, "node_modules", "google-proto-files");
export const deployImage = join(root, "deploy", "uab.binpb");

function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
}

function protoFiles(dirs) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".proto")) out.push(relative(join(root, "proto"), p));
    }
  };
  for (const d of dirs) walk(resolve(root, d));
  return out;
}

function validateDescriptorSet(dir) {
  const seen = new Map();
  const visit = (f) => {
    if (seen.has(f.name)) return;
    for (const dep of f.dependencies) visit(dep);
    seen.set(f.name, f.proto);
  };
  visit(file_buf_validate_validate);
  const path = join(dir, "protovalidate.binpb");
  writeFileSync(path, toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...seen.values()] })));
  return path;
}

/** Builds an image of the given proto dirs (all of proto/ by default). */
export function buildImage(out, dirs = ["proto"]) {
  const tmp = mkdtempSync(join(tmpdir(), "uab-proto-"));
  try {
    const files = protoFiles(dirs);
    if (files.length === 0) throw new Error(`no .proto files under ${dirs.join(", ")}`);
    mkdirSync(dirname(out), { recursive: true });
    run("protoc", [
      `--descriptor_set_in=${validateDescriptorSet(tmp)}`,
      "-I",
      join(root, "proto"),
      "-I",
      googleProtos,
      "--include_imports",
      "--include_source_info",
      "-o",
      out,
      ...files,
    ]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function requireProtoc() {
  try {
    execFileSync("protoc", ["--version"], { stdio: "ignore" });
  } catch {
    console.error("protoc is missing: install it with `apt-get install -y protobuf-compiler` (or `make setup`).");
    process.exit(1);
  }
}

const [cmd = "lint", ...args] = process.argv.slice(2);
requireProtoc();
const image = join(root, "build", "uab.binpb");
switch (cmd) {
  case "image":
    buildImage(resolve(args[0] ?? image));
    break;
  case "lint": {
    const dirs = args.length ? args : ["proto"];
    buildImage(image, dirs);
    const paths = protoFiles(dirs).filter((f) => f.startsWith("uab/"));
    run(bin("buf"), ["lint", image, "--config", "buf.yaml", ...paths.flatMap((p) => ["--path", p])]);
    console.log(`buf lint: ${paths.length} files clean`);
    break;
  }
  case "generate":
  case "check": {
    buildImage(image);
    run(bin("buf"), ["generate", image]);
    // buf/validate is imported from @bufbuild/protovalidate (rewrite_imports), not generated.
    rmSync(join(root, "libs/proto/src/gen/buf"), { recursive: true, force: true });
    buildImage(deployImage);
    if (cmd === "check") {
      try {
        run("git", ["diff", "--exit-code", "--stat", "--", "libs/proto/src/gen", "deploy/uab.binpb"]);
        const untracked = execFileSync("git", ["ls-files", "--others", "--exclude-standard", "libs/proto/src/gen"], { cwd: root }).toString().trim();
        if (untracked) throw new Error(`untracked generated files:\n${untracked}`);
      } catch (e) {
        console.error(`generated code is out of date: run \`make generate\` and commit the result\n${e.message ?? ""}`);
        process.exit(1);
      }
    }
    break;
  }
  case "breaking": {
    const ref = args[0] ?? "main";
    const against = join(root, "build", "against.binpb");
    const wt = mkdtempSync(join(tmpdir(), "uab-against-"));
    try {
      run("git", ["worktree", "add", "--detach", wt, ref], { stdio: "ignore" });
      if (!existsSync(join(wt, "proto", "uab"))) {
        console.log(`buf breaking: ${ref} has no contracts yet, nothing to compare`);
        break;
      }
      buildImageFrom(wt, against);
      buildImage(image);
      run(bin("buf"), ["breaking", image, "--against", against, "--config", "buf.yaml", "--exclude-path", "buf", "--exclude-path", "google"]);
      console.log(`buf breaking: no breaking change against ${ref}`);
    } finally {
      execFileSync("git", ["worktree", "remove", "--force", wt], { cwd: root, stdio: "ignore" });
    }
    break;
  }
  default:
    console.error(`unknown command ${cmd}`);
    process.exit(2);
}

function buildImageFrom(dir, out) {
  const tmp = mkdtempSync(join(tmpdir(), "uab-proto-"));
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".proto")) files.push(relative(join(dir, "proto"), p));
    }
  };
  walk(join(dir, "proto"));
  run("protoc", [`--descriptor_set_in=${validateDescriptorSet(tmp)}`, "-I", join(dir, "proto"), "-I", googleProtos, "--include_imports", "--include_source_info", "-o", out, ...files]);
  rmSync(tmp, { recursive: true, force: true });
}
