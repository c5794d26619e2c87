/**
 * Checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), byte for
 * byte the format of Go's golang.org/x/mod/sumdb/note, so standard tools verify them.
 *
 * A signed note is a text ending in a newline, a blank line, then signature lines
 * `— <key name> <base64(key hash ‖ signature)>` (an em dash, U+2014). The key hash is the first
 * 4 bytes (big-endian) of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`; the signature is Ed25519
 * over the text, including its final newline but not the blank line. Keys are written as
 * `<name>+<8 hex digits of the key hash>+<base64(0x01 ‖ public key)>` (verifier key) and
 * `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ 32-byte seed)>` (signer key, secret).
 *
 * A checkpoint's text is `<origin>\n<tree size>\n<base64 root hash>\n` then optional
 * extension lines.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { fromBase64Strict, isBytes, isHash, isSize, sha256, toBase64 } from "./bytes.js";

/** Why a note or checkpoint was refused; see {@link NoteError}. */
export type NoteErrorCode =
  | "malformed_key"
  | "malformed_note"
  | "malformed_checkpoint"
  | "unknown_key"
  | "ambiguous_key"
  | "bad_signature"
  | "wrong_origin";

/**
 * A note, checkpoint or key that could not be used. `code` says why: `malformed_*` (syntax),
 * `unknown_key` (no signature by a known key, as Go's UnverifiedNoteError), `ambiguous_key`
 * (two known keys with one name and hash), `bad_signature` (a known key's signature does not
 * verify, as Go's InvalidSignatureError) or `wrong_origin`.
 */
export class NoteError extends Error {
  /** Why. */
  readonly code: NoteErrorCode;
  /** For `unknown_key`: the signatures found, none by a known key. */
  readonly unverifiedSignatures: readonly NoteSignature[];

  /** @param code why; @param message what; @param unverifiedSignatures for `unknown_key`. */
  constructor(code: NoteErrorCode, message: string, unverifiedSignatures: readonly NoteSignature[] = []) {
    super(message);
    this.name = "NoteError";
    this.code = code;
    this.unverifiedSignatures = unverifiedSignatures;
  }
}

/** One signature line of a note. */
export interface NoteSignature {
  /** The key name. */
  readonly name: string;
  /** The key hash (uint32). */
  readonly keyHash: number;
  /** The signature bytes after the key hash (64 bytes for Ed25519). */
  readonly signature: Uint8Array;
  /** The base64 text of the line, key hash included, as found. */
  readonly base64: string;
}

/** A public key that checks note signatures. */
export interface NoteVerifier {
  /** The key name (`uab.example.com/audit`). */
  readonly name: string;
  /** The key hash (uint32). */
  readonly keyHash: number;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The verifier key string `<name>+<hash>+<base64(0x01 ‖ key)>`. */
  readonly verifierKey: string;
  /** Whether `signature` is this key's signature of `message`; never throws. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A private key that signs notes (also a verifier of its own signatures). */
export interface NoteSigner extends NoteVerifier {
  /**
   * The signer key string `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>`; secret, and not
   * enumerable (absent from JSON and logs of the signer).
   */
  readonly privateKey: string;
  /** The Ed25519 signature (64 bytes) of `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** The parts of a checkpoint's note text. */
export interface CheckpointBody {
  /** The log's origin line, unique per log. */
  readonly origin: string;
  /** Number of leaves. */
  readonly treeSize: number;
  /** The RFC 9162 tree head at that size (32 bytes). */
  readonly rootHash: Uint8Array;
  /** Extension lines after the root hash, without newlines (none by default). */
  readonly extensions?: readonly string[];
}

/** A note opened with {@link openNote}. */
export interface OpenedNote {
  /** The signed text (ends in a newline). */
  readonly text: string;
  /** The signatures that verified with a known key, in note order. */
  readonly signatures: readonly NoteSignature[];
  /** Signatures by unknown keys (ignored, as the signed-note spec requires). */
  readonly unverifiedSignatures: readonly NoteSignature[];
}

/** A checkpoint opened with {@link openCheckpoint}. */
export interface OpenedCheckpoint extends OpenedNote {
  /** The log's origin line. */
  readonly origin: string;
  /** Number of leaves. */
  readonly treeSize: number;
  /** The tree head (32 bytes). */
  readonly rootHash: Uint8Array;
  /** The extension lines (possibly none). */
  readonly extensions: readonly string[];
}

const ALG_ED25519 = 0x01;
const SIGNATURE_PREFIX = "— ";
const MAX_SIGNATURES = 100; // as Go's Open: a note with more is malformed
// DER headers of an Ed25519 private key (PKCS #8) and public key (SPKI) around the raw bytes.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");
const UTF8 = new TextEncoder();
// Go's unicode.IsSpace is the Unicode White_Space property.
const SPACE = /\p{White_Space}/u;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
// ASCII control characters other than newline, which no note may contain.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

/** Whether a key name is valid: non-empty, no Unicode space, no `+`, well-formed Unicode. */
function isValidName(name: unknown): name is string {
  return (
    typeof name === "string" && name !== "" && !SPACE.test(name) && !name.includes("+") && !LONE_SURROGATE.test(name)
  );
}

/** Whether a text is valid note text: well-formed, no control characters but newline. */
function isValidText(text: string): boolean {
  return !CONTROL.test(text) && !LONE_SURROGATE.test(text);
}

/**
 * The key hash of an Ed25519 key: the first 4 bytes, big-endian, of
 * `SHA-256(name ‖ "\n" ‖ 0x01 ‖ publicKey)`.
 * @throws TypeError when the public key is not 32 bytes.
 */
export function noteKeyHash(name: string, publicKey: Uint8Array): number {
  if (!isHash(publicKey)) throw new TypeError("noteKeyHash: an Ed25519 public key is 32 bytes");
  const nameBytes = UTF8.encode(`${name}\n`);
  const data = new Uint8Array(nameBytes.length + 1 + publicKey.length);
  data.set(nameBytes);
  data[nameBytes.length] = ALG_ED25519;
  data.set(publicKey, nameBytes.length + 1);
  const digest = sha256(data);
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0);
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function withAlg(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + key.length);
  out[0] = ALG_ED25519;
  out.set(key, 1);
  return out;
}

/**
 * The verifier key string of an Ed25519 public key: `<name>+<hash>+<base64(0x01 ‖ key)>`.
 * @throws TypeError when the name is invalid or the key is not 32 bytes.
 */
export function verifierKeyOf(name: string, publicKey: Uint8Array): string {
  if (!isValidName(name)) throw new TypeError(`verifierKeyOf: invalid key name ${JSON.stringify(name)}`);
  return `${name}+${hex8(noteKeyHash(name, publicKey))}+${toBase64(withAlg(publicKey))}`;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, publicKey]), format: "der", type: "spki" });
}

function makeVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  const keyObject = publicKeyObject(publicKey);
  const keyHash = noteKeyHash(name, publicKey);
  return {
    name,
    keyHash,
    publicKey: Uint8Array.from(publicKey),
    verifierKey: `${name}+${hex8(keyHash)}+${toBase64(withAlg(publicKey))}`,
    verify(message, signature) {
      if (!isBytes(message) || !isBytes(signature) || signature.length !== 64) {
        return false;
      }
      try {
        return verify(null, message, keyObject, signature);
      } catch {
        return false;
      }
    },
  };
}

/**
 * A verifier from a verifier key string (`<name>+<hash>+<base64(0x01 ‖ key)>`), checking the
 * name, the algorithm byte, the key length and that the hash matches.
 * @throws NoteError `malformed_key`.
 */
export function parseVerifierKey(verifierKey: string): NoteVerifier {
  const bad = (why: string): never => {
    throw new NoteError("malformed_key", `malformed verifier key: ${why}`);
  };
  if (typeof verifierKey !== "string") bad("not a string");
  const [name, hash16, key64] = chop(verifierKey, 2);
  if (!isValidName(name)) bad("invalid name");
  if (!/^[0-9a-fA-F]{8}$/.test(hash16 ?? "")) bad("the key hash is not 8 hex digits");
  const key = fromBase64Strict(key64 ?? "");
  if (key === undefined || key.length === 0) return bad("the key is not base64");
  if (key[0] !== ALG_ED25519) bad(`unknown algorithm ${key[0]}`);
  if (key.length !== 33) bad("an Ed25519 key is 32 bytes");
  const publicKey = key.subarray(1);
  if (noteKeyHash(name, publicKey) !== Number.parseInt(hash16 as string, 16)) bad("the key hash does not match");
  try {
    return makeVerifier(name, publicKey);
  } catch {
    return bad("not an Ed25519 public key");
  }
}

/** Splits at the first `count` plus signs (the base64 key after them may hold more). */
function chop(s: string, count: number): [string, ...(string | undefined)[]] {
  const parts: string[] = [];
  let rest = s;
  for (let i = 0; i < count; i++) {
    const at = rest.indexOf("+");
    if (at < 0) break;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts as [string, ...string[]];
}

/**
 * A signer from a 32-byte Ed25519 seed (the private key as RFC 8032 defines it), for keys
 * kept in a key store rather than as signer key strings.
 * @throws TypeError when the name is invalid or the seed is not 32 bytes.
 */
export function noteSignerFromSeed(name: string, seed: Uint8Array): NoteSigner {
  if (!isValidName(name)) throw new TypeError(`noteSignerFromSeed: invalid key name ${JSON.stringify(name)}`);
  if (!isHash(seed)) throw new TypeError("noteSignerFromSeed: an Ed25519 seed is 32 bytes");
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  const publicKey = Uint8Array.from(spki.subarray(spki.length - 32));
  const verifier = makeVerifier(name, publicKey);
  const signer = {
    ...verifier,
    sign(message: Uint8Array) {
      return Uint8Array.from(sign(null, message, privateKey));
    },
  };
  // Not enumerable, so that logging or serialising a signer does not print the secret.
  Object.defineProperty(signer, "privateKey", {
    value: `PRIVATE+KEY+${name}+${hex8(verifier.keyHash)}+${toBase64(withAlg(seed))}`,
    enumerable: false,
  });
  return signer as NoteSigner;
}

/**
 * A signer from a signer key string (`PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>`, as
 * Go's note.GenerateKey writes it), checking that the hash matches the derived public key.
 * @throws NoteError `malformed_key`.
 */
export function parseSignerKey(privateKey: string): NoteSigner {
  const bad = (why: string): never => {
    throw new NoteError("malformed_key", `malformed signer key: ${why}`);
  };
  if (typeof privateKey !== "string") bad("not a string");
  const [p1, p2, name, hash16, key64] = chop(privateKey, 4);
  if (p1 !== "PRIVATE" || p2 !== "KEY") bad("it does not start with PRIVATE+KEY+");
  if (!isValidName(name)) bad("invalid name");
  if (!/^[0-9a-fA-F]{8}$/.test(hash16 ?? "")) bad("the key hash is not 8 hex digits");
  const key = fromBase64Strict(key64 ?? "");
  if (key === undefined || key.length === 0) return bad("the key is not base64");
  if (key[0] !== ALG_ED25519) bad(`unknown algorithm ${key[0]}`);
  if (key.length !== 33) bad("an Ed25519 seed is 32 bytes");
  const signer = noteSignerFromSeed(name as string, key.subarray(1));
  if (signer.keyHash !== Number.parseInt(hash16 as string, 16)) bad("the key hash does not match");
  return signer;
}

/**
 * A new random Ed25519 signing key named `name` (the C2SP key name, which SHOULD be the log's
 * origin or a URL-like name such as `uab.example.com/audit`).
 * @throws TypeError when the name is empty or holds a space or `+`.
 */
export function generateNoteKey(name: string): NoteSigner {
  if (!isValidName(name)) throw new TypeError(`generateNoteKey: invalid key name ${JSON.stringify(name)}`);
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  return noteSignerFromSeed(name, Uint8Array.from(Buffer.from(jwk.d as string, "base64url")));
}

/** The signature line of one signature (without the trailing newline). */
function signatureLine(name: string, keyHash: number, signature: Uint8Array): string {
  const raw = new Uint8Array(4 + signature.length);
  new DataView(raw.buffer).setUint32(0, keyHash);
  raw.set(signature, 4);
  return `${SIGNATURE_PREFIX}${name} ${toBase64(raw)}`;
}

function checkText(text: string, what: string): void {
  if (typeof text !== "string" || !text.endsWith("\n") || !isValidText(text)) {
    throw new NoteError(
      "malformed_note",
      `${what}: the text must end in a newline and hold no control character but newline`,
    );
  }
}

/**
 * Assembles a signed note from a text and signatures made elsewhere (for instance by a key
 * store that signs remotely): the text, a blank line, one signature line each.
 * @throws NoteError `malformed_note` for an invalid text, name or missing signature.
 */
export function assembleNote(
  text: string,
  signatures: readonly { readonly name: string; readonly keyHash: number; readonly signature: Uint8Array }[],
): string {
  checkText(text, "assembleNote");
  if (signatures.length === 0) throw new NoteError("malformed_note", "assembleNote: a note needs a signature");
  const lines = signatures.map(({ name, keyHash, signature }) => {
    if (!isValidName(name) || !Number.isInteger(keyHash) || keyHash < 0 || keyHash > 0xffffffff) {
      throw new NoteError("malformed_note", `assembleNote: invalid key name or hash for ${JSON.stringify(name)}`);
    }
    if (!isBytes(signature) || signature.length === 0) {
      throw new NoteError("malformed_note", "assembleNote: empty signature");
    }
    return `${signatureLine(name, keyHash, signature)}\n`;
  });
  return `${text}\n${lines.join("")}`;
}

/**
 * Signs a text as a note with one or more keys (as Go's note.Sign).
 * @throws NoteError `malformed_note` when the text does not end in a newline or holds
 * control characters other than newline.
 */
export function signNote(text: string, signers: NoteSigner | readonly NoteSigner[]): string {
  checkText(text, "signNote");
  const list = Array.isArray(signers) ? signers : [signers as NoteSigner];
  const message = UTF8.encode(text);
  return assembleNote(
    text,
    list.map((s) => ({ name: s.name, keyHash: s.keyHash, signature: s.sign(message) })),
  );
}

/**
 * Splits a signed note into its text and signature lines without checking any signature
 * (to read the raw signature of a note the caller signed, or to inspect an unknown one).
 * @throws NoteError `malformed_note` as Go's note.Open would.
 */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  const bad = (why: string): never => {
    throw new NoteError("malformed_note", `malformed note: ${why}`);
  };
  if (typeof note !== "string") bad("not a string");
  if (!isValidText(note)) bad("it holds a control character other than newline, or a lone surrogate");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) bad("no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block === "" || !block.endsWith("\n")) bad("the signature block must be lines ending in newlines");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) bad(`more than ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) bad("a signature line must start with an em dash and a space");
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const base64 = space < 0 ? "" : rest.slice(space + 1);
    const raw = fromBase64Strict(base64);
    if (!isValidName(name) || base64 === "" || raw === undefined || raw.length < 5) bad("malformed signature line");
    const bytes = raw as Uint8Array;
    const keyHash = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
    return { name, keyHash, signature: bytes.slice(4), base64 };
  });
  return { text, signatures };
}

/**
 * Opens a signed note (as Go's note.Open): verifies every signature by a known key and
 * returns the text with the verified signatures. Signatures by unknown keys are ignored
 * (listed as unverified); repeated signatures by one key count once.
 * @param verifierKeys the trusted keys, as verifier key strings or parsed verifiers.
 * @throws NoteError `malformed_note`, `malformed_key` (a verifier key string),
 * `ambiguous_key`, `bad_signature` (a known key's signature fails), or `unknown_key` (no
 * signature by a known key; the signatures are on the error).
 */
export function openNote(note: string, verifierKeys: readonly (string | NoteVerifier)[]): OpenedNote {
  const verifiers = verifierKeys.map((k) => (typeof k === "string" ? parseVerifierKey(k) : k));
  const { text, signatures } = parseNote(note);
  const message = UTF8.encode(text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  const seenUnverified = new Set<string>();
  for (const sig of signatures) {
    const id = `${sig.name}+${hex8(sig.keyHash)}`;
    const matches = verifiers.filter((v) => v.name === sig.name && v.keyHash === sig.keyHash);
    if (matches.length === 0) {
      const line = `${sig.name} ${sig.base64}`;
      if (!seenUnverified.has(line)) unverified.push(sig);
      seenUnverified.add(line);
      continue;
    }
    if (matches.length > 1) throw new NoteError("ambiguous_key", `ambiguous key ${id}`);
    if (seen.has(id)) continue;
    seen.add(id);
    if (!(matches[0] as NoteVerifier).verify(message, sig.signature)) {
      throw new NoteError("bad_signature", `invalid signature for key ${id}`);
    }
    verified.push(sig);
  }
  if (verified.length === 0) {
    const names = unverified.map((s) => `${s.name}+${hex8(s.keyHash)}`).join(", ");
    throw new NoteError(
      "unknown_key",
      `note has no verifiable signatures (signed by unknown keys: ${names})`,
      unverified,
    );
  }
  return { text, signatures: verified, unverifiedSignatures: unverified };
}

/**
 * The note text of a checkpoint: `<origin>\n<tree size>\n<base64 root hash>\n` and one line
 * per extension.
 * @throws NoteError `malformed_checkpoint` for an empty or multi-line origin, a tree size
 * that is not a safe integer, a root hash that is not 32 bytes, or an empty or multi-line
 * extension.
 */
export function checkpointText(checkpoint: CheckpointBody): string {
  const { origin, treeSize, rootHash, extensions = [] } = checkpoint;
  const bad = (why: string): never => {
    throw new NoteError("malformed_checkpoint", `malformed checkpoint: ${why}`);
  };
  const isLine = (s: unknown): boolean => typeof s === "string" && s !== "" && !s.includes("\n") && isValidText(s);
  if (!isLine(origin)) bad("the origin must be one non-empty line");
  if (!isSize(treeSize)) bad("the tree size must be a safe integer ≥ 0");
  if (!isHash(rootHash)) bad("the root hash must be 32 bytes");
  if (!extensions.every(isLine)) bad("extension lines must be non-empty single lines");
  return [origin, String(treeSize), toBase64(rootHash), ...extensions].map((l) => `${l}\n`).join("");
}

/**
 * Parses a checkpoint's note text (the part before the blank line).
 * @throws NoteError `malformed_checkpoint`.
 */
export function parseCheckpointText(text: string): Required<CheckpointBody> {
  const bad = (why: string): never => {
    throw new NoteError("malformed_checkpoint", `malformed checkpoint: ${why}`);
  };
  if (typeof text !== "string" || !text.endsWith("\n")) bad("the text must end in a newline");
  const lines = text.slice(0, -1).split("\n");
  const [origin = "", size = "", root = "", ...extensions] = lines;
  if (lines.length < 3) bad("it needs an origin, a tree size and a root hash line");
  if (origin === "") bad("empty origin");
  if (!/^(0|[1-9][0-9]*)$/.test(size))
    bad(`the tree size ${JSON.stringify(size)} is not a decimal without leading zeros`);
  const treeSize = Number(size);
  if (!Number.isSafeInteger(treeSize)) bad("the tree size is too large");
  const rootHash = fromBase64Strict(root);
  if (rootHash === undefined || rootHash.length !== 32) bad("the root hash is not 32 bytes of base64");
  if (extensions.some((l) => l === "")) bad("empty extension line");
  return { origin, treeSize, rootHash: rootHash as Uint8Array, extensions };
}

/**
 * Signs a checkpoint as a C2SP signed note.
 * @throws NoteError `malformed_checkpoint` (see {@link checkpointText}).
 */
export function signCheckpoint(checkpoint: CheckpointBody, signer: NoteSigner | readonly NoteSigner[]): string {
  return signNote(checkpointText(checkpoint), signer);
}

/**
 * Opens a signed checkpoint: verifies the note (see {@link openNote}) and parses its text.
 * @param options.origin when given, the checkpoint must be for this log (a checkpoint of
 * another log signed by the same key is refused with `wrong_origin`).
 * @throws NoteError (see {@link openNote}), `malformed_checkpoint` or `wrong_origin`.
 */
export function openCheckpoint(
  note: string,
  verifierKeys: readonly (string | NoteVerifier)[],
  options: { readonly origin?: string } = {},
): OpenedCheckpoint {
  const opened = openNote(note, verifierKeys);
  const body = parseCheckpointText(opened.text);
  if (options.origin !== undefined && body.origin !== options.origin) {
    throw new NoteError(
      "wrong_origin",
      `the checkpoint is for ${JSON.stringify(body.origin)}, not ${JSON.stringify(options.origin)}`,
    );
  }
  return { ...opened, ...body };
}
