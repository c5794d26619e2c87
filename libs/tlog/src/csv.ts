/**
 * A small RFC 4180 CSV codec for audit exports (internal to the package, not exported from its
 * index): rows are written with CRLF line ends, quoting a field only when it holds a comma, a
 * double quote, a CR or an LF; the parser reads exactly that grammar back (accepting bare LF
 * line ends too, as tools that convert line ends leave them) and refuses anything else with
 * the line it found it on.
 */

/** Characters that force a field to be quoted. */
const NEEDS_QUOTES = /[",\r\n]/;

/** One field as RFC 4180 writes it: quoted (inner quotes doubled) only when needed. */
export function csvField(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** One record, fields separated by commas and ended by CRLF. */
export function csvRow(fields: readonly string[]): string {
  return `${fields.map(csvField).join(",")}\r\n`;
}

/** A parsed record and the (1-based) line it starts on. */
export interface CsvRecord {
  /** The field values, unquoted. */
  readonly fields: string[];
  /** The line the record starts on, counting LF characters from 1. */
  readonly line: number;
}

/** Where and why a text is not RFC 4180 CSV. */
export interface CsvSyntaxProblem {
  /** The line of the problem, from 1. */
  readonly line: number;
  /** What is wrong. */
  readonly message: string;
  /** Whether the problem is the text ending inside a quoted field (a truncated file). */
  readonly atEnd: boolean;
}

/** The outcome of {@link parseCsvPrefix}: the records before the first problem, and the problem. */
export interface CsvParse {
  /** Every complete record before the problem (all of them without one). */
  readonly records: CsvRecord[];
  /** The first syntax problem, when there is one. */
  readonly problem?: CsvSyntaxProblem;
  /** Whether the text ends with a line break (RFC 4180 makes the last one optional). */
  readonly endsWithLineBreak: boolean;
}

/**
 * Parses CSV as far as it is well-formed: fields separated by commas, records by CRLF (or LF),
 * a field either unquoted (no double quote, no CR) or quoted from its first character with
 * inner quotes doubled and nothing after the closing quote but a separator. An empty text has
 * no record; a line break at the very end does not start one.
 */
export function parseCsvPrefix(text: string): CsvParse {
  const records: CsvRecord[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  const problem = (message: string, atEnd = false): CsvParse => ({
    records,
    problem: { line, message, atEnd },
    endsWithLineBreak: text.endsWith("\n"),
  });
  while (i < n) {
    const recordLine = line;
    const fields: string[] = [];
    for (;;) {
      let value: string;
      if (text.charCodeAt(i) === 0x22) {
        // Quoted field.
        let out = "";
        let from = i + 1;
        for (;;) {
          const q = text.indexOf('"', from);
          if (q < 0) return problem(`a quoted field opened on line ${line} is never closed`, true);
          const chunk = text.slice(from, q);
          for (let k = chunk.indexOf("\n"); k >= 0; k = chunk.indexOf("\n", k + 1)) line += 1;
          out += chunk;
          if (text.charCodeAt(q + 1) === 0x22) {
            out += '"';
            from = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        value = out;
        const c = text.charCodeAt(i);
        if (i < n && c !== 0x2c && c !== 0x0a && !(c === 0x0d && text.charCodeAt(i + 1) === 0x0a)) {
          return problem("a character follows the closing quote of a field");
        }
      } else {
        let j = i;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === 0x2c || c === 0x0a || c === 0x0d) break;
          if (c === 0x22) return problem("a double quote inside an unquoted field");
          j += 1;
        }
        if (j < n && text.charCodeAt(j) === 0x0d && text.charCodeAt(j + 1) !== 0x0a) {
          return problem("a carriage return that does not end a line, outside quotes");
        }
        value = text.slice(i, j);
        i = j;
      }
      fields.push(value);
      if (i >= n) break;
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i += 1;
        if (i >= n) {
          fields.push("");
          break;
        }
        continue;
      }
      i += c === 0x0d ? 2 : 1; // CRLF or LF
      line += 1;
      break;
    }
    records.push({ fields, line: recordLine });
  }
  return { records, endsWithLineBreak: text.endsWith("\n") };
}

/**
 * Parses a whole CSV text.
 * @throws SyntaxError naming the line of the first problem.
 */
export function parseCsv(text: string): string[][] {
  const { records, problem } = parseCsvPrefix(text);
  if (problem !== undefined) throw new SyntaxError(`CSV line ${problem.line}: ${problem.message}`);
  return records.map((r) => r.fields);
}
