/** Thrown when configuration is missing or malformed; the message names the variable. */
export class ConfigError extends Error {
  /** The offending environment variable. */
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`configuration error: ${variable} ${problem}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** Parses one environment variable's raw value. */
export interface ConfigField<T> {
  /** Turns the raw value (undefined when unset) into T, or throws a message (without the name). */
  parse(raw: string | undefined): T;
  /** Shown in docs and `uab config`. */
  readonly description: string;
}

type Fields = Record<string, ConfigField<unknown>>;
type Parsed<F extends Fields> = { readonly [K in keyof F]: F[K] extends ConfigField<infer T> ? T : never };

class FieldProblem extends Error {}

/**
 * Reads typed configuration from an environment. Every field is parsed; the first bad one
 * throws a {@link ConfigError} naming the variable and what is wrong with it.
 */
export function loadConfig<F extends Fields>(
  fields: F,
  env: Record<string, string | undefined> = process.env,
): Parsed<F> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(fields)) {
    const raw = env[name];
    try {
      out[name] = field.parse(raw === "" ? undefined : raw);
    } catch (e) {
      throw new ConfigError(name, e instanceof Error ? e.message : String(e));
    }
  }
  return out as Parsed<F>;
}

/** Field builders for {@link loadConfig}. */
export const env = {
  /** A string; `fallback` when unset, else required. */
  string(description: string, fallback?: string): ConfigField<string> {
    return {
      description,
      parse(raw) {
        if (raw !== undefined) return raw;
        if (fallback !== undefined) return fallback;
        throw new FieldProblem("is required but not set");
      },
    };
  },
  /** An optional string (undefined when unset). */
  optionalString(description: string): ConfigField<string | undefined> {
    return { description, parse: (raw) => raw };
  },
  /** An integer within [min, max]. */
  int(
    description: string,
    fallback: number,
    min = Number.MIN_SAFE_INTEGER,
    max = Number.MAX_SAFE_INTEGER,
  ): ConfigField<number> {
    return {
      description,
      parse(raw) {
        if (raw === undefined) return fallback;
        if (!/^-?\d+$/.test(raw)) throw new FieldProblem(`must be an integer, got "${raw}"`);
        const n = Number(raw);
        if (n < min || n > max) throw new FieldProblem(`must be between ${min} and ${max}, got ${n}`);
        return n;
      },
    };
  },
  /** A TCP port (0 lets the OS choose). */
  port(description: string, fallback: number): ConfigField<number> {
    return env.int(description, fallback, 0, 65535);
  },
  /** true/false, 1/0, yes/no. */
  bool(description: string, fallback: boolean): ConfigField<boolean> {
    return {
      description,
      parse(raw) {
        if (raw === undefined) return fallback;
        const v = raw.toLowerCase();
        if (["true", "1", "yes", "on"].includes(v)) return true;
        if (["false", "0", "no", "off"].includes(v)) return false;
        throw new FieldProblem(`must be true or false, got "${raw}"`);
      },
    };
  },
  /** An optional URL whose scheme is one of `protocols`. */
  optionalUrl(description: string, protocols: readonly string[]): ConfigField<string | undefined> {
    return {
      description,
      parse(raw) {
        if (raw === undefined) return undefined;
        let url: URL;
        try {
          url = new URL(raw);
        } catch {
          throw new FieldProblem("must be a URL");
        }
        if (!protocols.includes(url.protocol.replace(/:$/, ""))) {
          throw new FieldProblem(`must use one of ${protocols.join(", ")}, got ${url.protocol.replace(/:$/, "")}`);
        }
        return raw;
      },
    };
  },
  /** One of fixed values. */
  oneOf<const V extends string>(description: string, values: readonly V[], fallback: V): ConfigField<V> {
    return {
      description,
      parse(raw) {
        if (raw === undefined) return fallback;
        if (!(values as readonly string[]).includes(raw))
          throw new FieldProblem(`must be one of ${values.join(", ")}, got "${raw}"`);
        return raw as V;
      },
    };
  },
};
