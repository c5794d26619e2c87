#!/usr/bin/env node
// Copies the gateway's inputs into the chart, where templates/gateway.yaml reads them with
// .Files.Get (a chart can only read files inside itself):
//
//   deploy/envoy/envoy.yaml → helm/uab/files/envoy.yaml   (as is)
//   deploy/uab.binpb        → helm/uab/files/uab.binpb    (without source_code_info)
//
// The descriptor image loses its source info (comments, spans: two thirds of its size) on
// the way: Envoy's transcoder does not read it, and a ConfigMap holds at most 1 MiB.
// deploy/test/helm.test.ts fails when the copies drift.
//
//   node helm/uab/sync.mjs           copy
//   node helm/uab/sync.mjs --check   fail if a copy differs
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const chart = dirname(fileURLToPath(import.meta.url));
const root = resolve(chart, "..", "..");

function readVarint(buf, pos) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error("truncated varint");
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
    shift += 7;
  }
}

function writeVarint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}

/** Splits a message into fields: [{ number, wire, raw (whole field), value (payload of LEN fields) }]. */
function fields(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    const number = Math.floor(tag / 8);
    const wire = tag & 7;
    pos = afterTag;
    let value;
    if (wire === 0) [, pos] = readVarint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, p] = readVarint(buf, pos);
      value = buf.subarray(p, p + len);
      pos = p + len;
    } else throw new Error(`unsupported wire type ${wire}`);
    out.push({ number, wire, raw: buf.subarray(start, pos), value });
  }
  return out;
}

/**
 * A FileDescriptorSet without `source_code_info` (FileDescriptorProto field 9), everything
 * else byte for byte (options and their extensions included).
 */
export function stripSourceInfo(image) {
  const parts = [];
  for (const f of fields(image)) {
    if (f.number !== 1 || f.wire !== 2) {
      parts.push(f.raw);
      continue;
    }
    const file = Buffer.concat(
      fields(f.value)
        .filter((x) => x.number !== 9)
        .map((x) => x.raw),
    );
    parts.push(writeVarint(1 * 8 + 2), writeVarint(file.length), file);
  }
  return Buffer.concat(parts);
}

/** Each copy: where it goes and what it must contain. */
export function expectedCopies() {
  return [
    { to: join(chart, "files", "envoy.yaml"), bytes: readFileSync(join(root, "deploy", "envoy", "envoy.yaml")) },
    { to: join(chart, "files", "uab.binpb"), bytes: stripSourceInfo(readFileSync(join(root, "deploy", "uab.binpb"))) },
  ];
}

/** The copies that differ from what their source gives. */
export function staleCopies() {
  return expectedCopies().filter(({ to, bytes }) => !existsSync(to) || !readFileSync(to).equals(bytes));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const stale = staleCopies();
    for (const s of stale) console.error(`${s.to} is out of date: run node helm/uab/sync.mjs`);
    process.exit(stale.length ? 1 : 0);
  }
  mkdirSync(join(chart, "files"), { recursive: true });
  const copies = expectedCopies();
  for (const { to, bytes } of copies) writeFileSync(to, bytes);
  console.log(`wrote ${copies.map((c) => c.to).join(", ")}`);
}
