/** Page tokens and page sizes shared by every list RPC (AIP-158). */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "@uab/core";

/** Default and maximum page sizes for every list RPC. */
export const DEFAULT_PAGE_SIZE = 50;

/** The page size to use for a request's `page_size` (0 means the default). */
export function pageSize(requested: number): number {
  return requested > 0 ? Math.min(requested, 1000) : DEFAULT_PAGE_SIZE;
}

function filterKey(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 12);
}

/**
 * An opaque page token: the last id of the page (ids sort by creation) bound to a hash of
 * the filters, so a token cannot be replayed with other filters (AIP-158).
 */
export function encodePageToken(lastId: string, filters: unknown): string {
  return Buffer.from(JSON.stringify({ a: lastId, f: filterKey(filters) })).toString("base64url");
}

/** The id to continue after, or undefined for the first page; throws naming `page_token`. */
export function decodePageToken(token: string, filters: unknown): string | undefined {
  if (!token) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { a?: unknown; f?: unknown };
    if (typeof parsed.a !== "string" || typeof parsed.f !== "string") throw new Error("shape");
    if (parsed.f !== filterKey(filters)) {
      throw InvalidArgumentError.field(
        "page_token",
        "was issued for different filters; repeat the same filters or start over",
      );
    }
    return parsed.a;
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw InvalidArgumentError.field("page_token", "is not a token this service issued");
  }
}

/** Splits `rows` (fetched with limit size+1) into a page and the next token. */
export function paginate<T extends { id: string }>(
  rows: T[],
  size: number,
  filters: unknown,
): { items: T[]; next: string } {
  if (rows.length <= size) return { items: rows, next: "" };
  const items = rows.slice(0, size);
  return { items, next: encodePageToken(items[items.length - 1]!.id, filters) };
}

/** Escapes `%`, `_` and `\` for a LIKE pattern. */
export function likeContains(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
