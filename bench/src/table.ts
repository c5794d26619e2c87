/** One line of the results table. */
export interface Row {
  /** What was measured. */
  readonly name: string;
  /** The measured value, formatted. */
  readonly result: string;
  /** The target, formatted; empty when the row only reports. */
  readonly target: string;
  /** Whether the target was met; undefined when there is no target or the benchmark did not run. */
  readonly pass?: boolean;
  /** Context: percentiles, checks, caveats. */
  readonly notes: string;
}

/** Prints the rows as one aligned text table. */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.name,
    r.result,
    r.target || "—",
    r.pass === undefined ? "—" : r.pass ? "PASS" : "FAIL",
    r.notes,
  ]);
  const header = ["benchmark", "result", "target", "ok", "notes"];
  const widths = header.slice(0, 4).map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i < 4 ? v.padEnd(widths[i]!) : v))
      .join(" | ")
      .trimEnd();
  const rule = `${widths.map((w) => "-".repeat(w)).join("-+-")}-+------`;
  return [line(header), rule, ...cells.map(line)].join("\n");
}
