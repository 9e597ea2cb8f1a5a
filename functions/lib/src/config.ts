/** Raised when an environment variable is missing or malformed; the message names it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const present = (env: Env, name: string) => {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
};

/**
 * Reads an integer variable within bounds.
 * @example integer(process.env, 'PORT', { min: 1, max: 65535, fallback: 8080 })
 */
export const integer = (
  env: Env,
  name: string,
  options: { min: number; max: number; fallback?: number },
): number => {
  const raw = present(env, name);
  if (raw === undefined) {
    if (options.fallback === undefined) throw new ConfigError(`${name} is required`);
    return options.fallback;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < options.min || value > options.max) {
    throw new ConfigError(
      `${name} must be an integer from ${options.min} to ${options.max}, got "${raw}"`,
    );
  }
  return value;
};

/** Reads a required or defaulted string variable. */
export const text = (env: Env, name: string, fallback?: string): string => {
  const raw = present(env, name) ?? fallback;
  if (raw === undefined) throw new ConfigError(`${name} is required`);
  return raw;
};

/** Reads a URL variable with one of the given protocols. */
export const url = (env: Env, name: string, protocols: string[], fallback?: string): URL => {
  const raw = text(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL (${protocols.join(' or ')}), got "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return parsed;
};

/** Reads a variable that must be one of a fixed set of words. */
export const oneOf = <Choice extends string>(
  env: Env,
  name: string,
  choices: readonly Choice[],
  fallback: Choice,
): Choice => {
  const raw = present(env, name) ?? fallback;
  if (!choices.includes(raw as Choice)) {
    throw new ConfigError(`${name} must be one of ${choices.join(', ')}, got "${raw}"`);
  }
  return raw as Choice;
};

/** The addresses a function may listen on: all interfaces (a pod) or loopback (a laptop). */
export const listenHosts = ['0.0.0.0', '::', '127.0.0.1', '::1'] as const;
export type ListenHost = (typeof listenHosts)[number];
