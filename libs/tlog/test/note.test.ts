import { describe, expect, it } from "@jest/globals";
import {
  assembleNote,
  checkpointText,
  generateNoteKey,
  leafHash,
  NoteError,
  type NoteErrorCode,
  noteKeyHash,
  noteSignerFromSeed,
  openCheckpoint,
  openNote,
  parseCheckpointText,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  rootHash,
  signCheckpoint,
  signNote,
  verifierKeyOf,
} from "@uab/tlog";
import { hex } from "./support.js";

// golang.org/x/mod/sumdb/note: the package documentation's example key and note, and the
// second key of its tests (note_test.go).
const PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG =
  "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG =
  "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
const NOTE = `${TEXT}\n${PETER_SIG}`;

// A checkpoint signed by the real sum.golang.org (GOSUMDB's built-in key), as recorded in
// google/trillian-examples (gossip/client/client_test.go).
const SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_NOTE =
  "go.sum database tree\n13485\n/ZWur4obeiqK+ASdnPK+/Rmz6LPQMUeSmHh0+UkL54Y=\n\n" +
  "— sum.golang.org Az3grnQReYTvpCrRxT+w50vixbqBlB/aPS8bL8f8KW4HHP+UjLSXOJgCh4f54n8hO6lrESglzyRXMXnhaWzaeY3zqw8=\n";

function codeOf(fn: () => unknown): NoteErrorCode | "none" | "other" {
  try {
    fn();
    return "none";
  } catch (err) {
    return err instanceof NoteError ? err.code : "other";
  }
}

describe("signed notes: the Go reference vectors", () => {
  it("parses the verifier key and signs the example note byte for byte", () => {
    const v = parseVerifierKey(PETER_VKEY);
    expect(v.name).toBe("PeterNeumann");
    expect(v.keyHash.toString(16)).toBe("c74f20a3");
    expect(v.verifierKey).toBe(PETER_VKEY);
    expect(verifierKeyOf(v.name, v.publicKey)).toBe(PETER_VKEY);
    expect(noteKeyHash(v.name, v.publicKey)).toBe(0xc74f20a3);
    const signer = parseSignerKey(PETER_SKEY);
    expect(signer.privateKey).toBe(PETER_SKEY);
    expect(signer.verifierKey).toBe(PETER_VKEY);
    expect(signNote(TEXT, signer)).toBe(NOTE); // Ed25519 is deterministic
  });

  it("opens the example note and rejects every altered byte of it", () => {
    const opened = openNote(NOTE, [PETER_VKEY]);
    expect(opened.text).toBe(TEXT);
    expect(opened.signatures.map((s) => [s.name, s.keyHash, s.signature.length])).toEqual([
      ["PeterNeumann", 0xc74f20a3, 64],
    ]);
    const bytes = new TextEncoder().encode(NOTE);
    const decoder = new TextDecoder(); // invalid UTF-8 becomes U+FFFD, which breaks the note too
    let rejected = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x20, 0x80]) {
        const altered = Uint8Array.from(bytes);
        altered[i] = (altered[i] as number) ^ mask;
        const code = codeOf(() => openNote(decoder.decode(altered), [PETER_VKEY]));
        expect([i, mask, code]).toEqual([i, mask, expect.not.stringMatching(/^(none|other)$/)]);
        rejected += 1;
      }
    }
    expect(rejected).toBe(bytes.length * 3);
    // The kinds of refusal: text altered → bad signature; name altered → unknown key.
    expect(codeOf(() => openNote(NOTE.replace("cryptography", "cryptographY"), [PETER_VKEY]))).toBe("bad_signature");
    expect(codeOf(() => openNote(NOTE.replace("— PeterNeumann", "— PeterNeumanm"), [PETER_VKEY]))).toBe("unknown_key");
  });

  it("refuses the signature line quoted in the task brief, which is not the Go example's", () => {
    // "yhDzE2n4…" decodes to key hash ca10f313: not PeterNeumann's c74f20a3 (nor EnochRoot's),
    // so it cannot be the package's example; its 64 signature bytes do not verify either.
    const line =
      "— PeterNeumann yhDzE2n4iO3SZ2FA6QxoBQbqi7B+9F3HxYuZJnkHSvAWa1u5tYmVPb95OX+FpEmBXN+SJdm6pZLRkXp6qVBl+SMlcAc=\n";
    const [sig] = parseNote(`${TEXT}\n${line}`).signatures;
    expect(sig?.keyHash.toString(16)).toBe("ca10f313");
    expect(codeOf(() => openNote(`${TEXT}\n${line}`, [PETER_VKEY]))).toBe("unknown_key");
    expect(parseVerifierKey(PETER_VKEY).verify(new TextEncoder().encode(TEXT), sig?.signature as Uint8Array)).toBe(
      false,
    );
  });

  it("follows Go's Open on several signatures, duplicates and unknown keys", () => {
    const both = `${TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    const one = openNote(both, [PETER_VKEY]);
    expect(one.signatures.map((s) => s.name)).toEqual(["PeterNeumann"]);
    expect(one.unverifiedSignatures.map((s) => [s.name, s.keyHash])).toEqual([["EnochRoot", 0xaf0cfe78]]);
    const two = openNote(both, [PETER_VKEY, ENOCH_VKEY]);
    expect(two.signatures.map((s) => s.name)).toEqual(["PeterNeumann", "EnochRoot"]);
    expect(two.unverifiedSignatures).toEqual([]);
    let error: unknown;
    try {
      openNote(both, []);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(NoteError);
    expect((error as NoteError).code).toBe("unknown_key");
    expect((error as NoteError).unverifiedSignatures.map((s) => s.name)).toEqual(["PeterNeumann", "EnochRoot"]);
    // Duplicated verifier: ambiguous when used, ignored otherwise.
    expect(codeOf(() => openNote(`${TEXT}\n${ENOCH_SIG}`, [ENOCH_VKEY, PETER_VKEY, ENOCH_VKEY]))).toBe("ambiguous_key");
    expect(codeOf(() => openNote(`${TEXT}\n${PETER_SIG}`, [ENOCH_VKEY, PETER_VKEY, ENOCH_VKEY]))).toBe("none");
    // Too many signatures.
    expect(codeOf(() => openNote(`${TEXT}\n${PETER_SIG.repeat(101)}`, [PETER_VKEY]))).toBe("malformed_note");
    // A corrupted signature of a known key.
    const corrupt = `${TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    expect(codeOf(() => openNote(corrupt, [PETER_VKEY]))).toBe("bad_signature");
    // Repeated signatures count once; an unknown key's corrupted signature is just unverified.
    const enochCorrupt = `${ENOCH_SIG.slice(0, 60)}ABCD${ENOCH_SIG.slice(60)}`;
    const repeated = openNote(`${TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}${enochCorrupt}`, [PETER_VKEY]);
    expect(repeated.signatures.length).toBe(1);
    expect(repeated.unverifiedSignatures.length).toBe(2);
    // Go's malformed messages.
    const bad = [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\u0001${TEXT}\n${PETER_SIG}`,
      `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
      `${TEXT}\n— PeterNeumann AQID\n`,
      `${TEXT}\n— PeterNeumann \n`,
    ];
    for (const msg of bad) expect(codeOf(() => openNote(msg, [PETER_VKEY]))).toBe("malformed_note");
  });

  it("rejects every mangling of the verifier and signer keys (as Go's TestNewVerifier)", () => {
    for (const key of [PETER_VKEY, PETER_SKEY]) {
      const parse = key === PETER_VKEY ? parseVerifierKey : parseSignerKey;
      for (let i = 0; i <= key.length; i++) {
        for (let j = i + 1; j <= key.length; j++) {
          if (i !== 0 || j !== key.length) expect(codeOf(() => parse(key.slice(i, j)))).toBe("malformed_key");
        }
      }
      for (let i = 0; i < key.length; i++) {
        const mangled = key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) + 1) + key.slice(i + 1);
        expect(codeOf(() => parse(mangled))).toBe("malformed_key");
      }
    }
    // Wrong key length and unknown algorithm, each with an adjusted key hash.
    expect(
      codeOf(() => parseVerifierKey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")),
    ).toBe("malformed_key");
    expect(codeOf(() => parseVerifierKey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"))).toBe(
      "malformed_key",
    );
  });
});

describe("checkpoints", () => {
  it("opens a checkpoint signed by sum.golang.org", () => {
    const cp = openCheckpoint(SUMDB_NOTE, [SUMDB_VKEY]);
    expect(cp.origin).toBe("go.sum database tree");
    expect(cp.treeSize).toBe(13485);
    expect(Buffer.from(cp.rootHash).toString("base64")).toBe("/ZWur4obeiqK+ASdnPK+/Rmz6LPQMUeSmHh0+UkL54Y=");
    expect(cp.extensions).toEqual([]);
    expect(cp.signatures[0]?.keyHash).toBe(0x033de0ae);
    expect(codeOf(() => openCheckpoint(SUMDB_NOTE.replace("13485", "13486"), [SUMDB_VKEY]))).toBe("bad_signature");
    expect(codeOf(() => openCheckpoint(SUMDB_NOTE, [SUMDB_VKEY], { origin: "uab.example.com/audit/x" }))).toBe(
      "wrong_origin",
    );
  });

  it("parses the C2SP tlog-checkpoint example", () => {
    const example =
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" +
      "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    const { text, signatures } = parseNote(example);
    expect(parseCheckpointText(text)).toMatchObject({ origin: "example.com/behind-the-sofa", treeSize: 20852163 });
    expect(signatures[0]?.name).toBe("example.com/behind-the-sofa");
    expect(codeOf(() => openCheckpoint(example, [PETER_VKEY]))).toBe("unknown_key");
  });

  it("signs and opens UAB checkpoints with extension lines, and key rotation keeps old ones valid", () => {
    const leaves = Array.from({ length: 10 }, (_, i) => leafHash(Uint8Array.of(i)));
    const origin = "uab.example.com/audit/ten_01hzy3k4m5n6p7q8r9s0t1v2w3";
    const key = generateNoteKey("uab.example.com/audit");
    const extensions = [`chain ${Buffer.alloc(32, 7).toString("base64")}`, "time 2026-11-22T10:00:00Z"];
    const note = signCheckpoint({ origin, treeSize: 10, rootHash: rootHash(leaves), extensions }, key);
    expect(note.startsWith(`${origin}\n10\n${Buffer.from(rootHash(leaves)).toString("base64")}\nchain `)).toBe(true);
    const cp = openCheckpoint(note, [key.verifierKey], { origin });
    expect(cp.treeSize).toBe(10);
    expect(hex(cp.rootHash)).toBe(hex(rootHash(leaves)));
    expect(cp.extensions).toEqual(extensions);
    expect(cp.text).toBe(checkpointText({ origin, treeSize: 10, rootHash: rootHash(leaves), extensions }));
    // The signer key string and the seed restore the same key; it never shows in logs or JSON.
    expect(parseSignerKey(key.privateKey).verifierKey).toBe(key.verifierKey);
    expect(JSON.stringify(key)).not.toContain("PRIVATE");
    expect(Object.keys(key)).not.toContain("privateKey");
    // Rotation: a new key with the same name; both verify their own checkpoints.
    const next = generateNoteKey("uab.example.com/audit");
    expect(next.keyHash).not.toBe(key.keyHash);
    const newer = signCheckpoint({ origin, treeSize: 10, rootHash: rootHash(leaves) }, next);
    const keys = [key.verifierKey, next.verifierKey];
    expect(openCheckpoint(note, keys).signatures[0]?.keyHash).toBe(key.keyHash);
    expect(openCheckpoint(newer, keys).signatures[0]?.keyHash).toBe(next.keyHash);
    expect(codeOf(() => openCheckpoint(newer, [key.verifierKey]))).toBe("unknown_key");
    // A cosigned checkpoint (two keys) opens with either.
    const cosigned = signCheckpoint({ origin, treeSize: 10, rootHash: rootHash(leaves) }, [key, next]);
    expect(openCheckpoint(cosigned, [next.verifierKey]).unverifiedSignatures.length).toBe(1);
    // A signature made elsewhere (a key store) assembles into the same note.
    const text = checkpointText({ origin, treeSize: 10, rootHash: rootHash(leaves) });
    const remote = noteSignerFromSeed(
      next.name,
      Buffer.from(next.privateKey.split("+").slice(4).join("+"), "base64").subarray(1),
    );
    expect(
      assembleNote(text, [
        { name: next.name, keyHash: next.keyHash, signature: remote.sign(new TextEncoder().encode(text)) },
      ]),
    ).toBe(newer);
  });

  it("rejects malformed checkpoints", () => {
    const root = Buffer.alloc(32, 1).toString("base64");
    const bad = [
      `o\n01\n${root}\n`,
      `o\n-1\n${root}\n`,
      `o\n1.0\n${root}\n`,
      "o\n1\nAAAA\n",
      `o\n1\n${root.slice(0, -1)}\n`,
      `\n1\n${root}\n`,
      `o\n1\n${root}`,
      "o\n1\n",
      `o\n1\n${root}\n\nx\n`,
      `o\n99999999999999999999\n${root}\n`,
    ];
    for (const text of bad) expect(codeOf(() => parseCheckpointText(text))).toBe("malformed_checkpoint");
    expect(parseCheckpointText(`o\n0\n${root}\n`).treeSize).toBe(0);
    const key = generateNoteKey("k");
    const rootHash32 = new Uint8Array(32);
    const badBodies = [
      { origin: "", treeSize: 1, rootHash: rootHash32 },
      { origin: "a\nb", treeSize: 1, rootHash: rootHash32 },
      { origin: "o", treeSize: -1, rootHash: rootHash32 },
      { origin: "o", treeSize: 1, rootHash: new Uint8Array(31) },
      { origin: "o", treeSize: 1, rootHash: rootHash32, extensions: [""] },
      { origin: "o", treeSize: 1, rootHash: rootHash32, extensions: ["a\nb"] },
    ];
    for (const body of badBodies) expect(codeOf(() => signCheckpoint(body, key))).toBe("malformed_checkpoint");
    expect(() => generateNoteKey("bad name")).toThrow(TypeError);
    expect(() => generateNoteKey("a+b")).toThrow(TypeError);
    expect(codeOf(() => signNote("no newline", key))).toBe("malformed_note");
  });
});
