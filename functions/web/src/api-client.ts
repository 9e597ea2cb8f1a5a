import { describeError, type Logger } from '@secretid/lib/logger';
import { type Dispatcher, Pool } from 'undici';

export const genders = ['female', 'male'] as const;
/** The genders the API knows; "any" is expressed by leaving the gender out. */
export type Gender = (typeof genders)[number];

/** One identity, as the API's `GET /randomName` returns it. */
export interface Identity {
  firstName: string;
  lastName: string;
  fullName: string;
  gender: Gender;
}

/** What the page needs from the API; tests pass a fake. */
export interface IdentitySource {
  /** Resolves to a random identity or rejects with {@link ApiUnavailableError}. */
  randomName(options?: { gender?: Gender; signal?: AbortSignal }): Promise<Identity>;
}

/** An {@link IdentitySource} over HTTP that owns a connection pool. */
export interface ApiClient extends IdentitySource {
  /** The longest a `randomName` call can take, retries and backoff included. */
  readonly deadlineMs: number;
  /** Closes the pool; in-flight requests finish first. */
  close(): Promise<void>;
}

export interface ApiClientOptions {
  /** Where the API listens, e.g. `http://api.secretid`; a path prefix is kept. */
  baseUrl: URL | string;
  /** Most open connections to the API from this instance. */
  connections: number;
  /** Deadline of one attempt: connect, headers and body. */
  timeoutMs: number;
  /** Extra attempts after a connection error or a 502/503/504. */
  retries: number;
  logger: Logger;
}

/**
 * The API could not hand out an identity: unreachable, too slow, failing or answering garbage.
 * `cause` says which, in words fit for a log line.
 */
export class ApiUnavailableError extends Error {
  override name = 'ApiUnavailableError';
  override readonly cause: string;
  /** HTTP status of the last answer, if there was one. */
  readonly status: number | undefined;
  readonly attempts: number;

  constructor(cause: string, details: { status?: number; attempts: number }) {
    super(`identity API unavailable: ${cause}`);
    this.cause = cause;
    this.status = details.status;
    this.attempts = details.attempts;
  }
}

const retryableStatuses = new Set([502, 503, 504]);

/** Errors raised before a request reached the API, or when a kept-alive socket went stale. */
const connectionErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const isConnectionError = (error: unknown): boolean => {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && connectionErrorCodes.has(code)) return true;
  // Happy eyeballs (several addresses) reports an AggregateError of the attempts.
  return error instanceof AggregateError && error.errors.some(isConnectionError);
};

const maximumResponseBytes = 16 * 1024;
const firstBackoffMs = 50;
const longestBackoffMs = 400;
const longestNameLength = 200;

/** Full-jitter exponential backoff: 0..50 ms, 0..100 ms, 0..200 ms, ... capped. */
const backoffMs = (retry: number) =>
  Math.random() * Math.min(longestBackoffMs, firstBackoffMs * 2 ** retry);

const sleep = (ms: number, signal: AbortSignal | undefined) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const isName = (value: unknown): value is string =>
  typeof value === 'string' && value.trim() !== '' && value.length <= longestNameLength;

/** Checks the shape of an answer; returns a reason when it is not an identity. */
export const parseIdentity = (value: unknown): Identity | string => {
  if (typeof value !== 'object' || value === null) return 'response is not a JSON object';
  const { firstName, lastName, fullName, gender } = value as Record<string, unknown>;
  if (!isName(firstName)) return 'response has no valid firstName';
  if (!isName(lastName)) return 'response has no valid lastName';
  if (!isName(fullName)) return 'response has no valid fullName';
  if (!genders.includes(gender as Gender)) return 'response has no valid gender';
  return { firstName, lastName, fullName, gender: gender as Gender };
};

const describeAttemptError = (error: unknown, timeoutMs: number) => {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return `no answer within ${timeoutMs} ms`;
  }
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return `no answer within ${timeoutMs} ms`;
  }
  return typeof code === 'string' ? `${code}: ${describeError(error)}` : describeError(error);
};

/**
 * Creates the web function's client of the API: a keep-alive pool capped at `connections`,
 * a deadline per attempt, and bounded retries (GET is idempotent) on connection errors and
 * 502/503/504 only. A timed-out attempt is not retried: a slow API is not helped by more load.
 *
 * @example
 * const api = createApiClient({ baseUrl: 'http://api.secretid', connections: 16,
 *   timeoutMs: 2000, retries: 2, logger });
 * const identity = await api.randomName({ gender: 'female' });
 */
/** What one attempt ended with: an identity, or a failure that says whether to retry. */
type Outcome = { identity: Identity } | { cause: string; status?: number; retryable: boolean };

export const createApiClient = (options: ApiClientOptions): ApiClient => {
  const { timeoutMs, retries, logger } = options;
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin, {
    connections: options.connections,
    pipelining: 1,
    connect: { timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    // Below the API's own keep-alive (65 s), so this side closes idle sockets first.
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    maxResponseSize: maximumResponseBytes,
  });
  const deadlineMs = timeoutMs * (retries + 1) + longestBackoffMs * retries;

  /** One attempt: an identity, or a failure that says whether another attempt may help. */
  const attempt = async (
    path: string,
    attemptMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Outcome> => {
    // A timer that is cleared as soon as the attempt ends: AbortSignal.timeout() and
    // AbortSignal.any() stay reachable until their timers fire and grew the heap by hundreds
    // of megabytes under load.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`no answer within ${attemptMs} ms`, 'TimeoutError')),
      attemptMs,
    );
    const onCallerAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      return await exchange(path, attemptMs, controller.signal, signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCallerAbort);
    }
  };

  /** Sends the request and reads the answer, under the attempt's abort signal. */
  const exchange = async (
    path: string,
    attemptMs: number,
    abort: AbortSignal,
    signal: AbortSignal | undefined,
  ): Promise<Outcome> => {
    let response: Dispatcher.ResponseData;
    try {
      response = await pool.request({
        method: 'GET',
        path,
        headers: { accept: 'application/json' },
        signal: abort,
      });
    } catch (error) {
      return {
        cause: describeAttemptError(error, attemptMs),
        retryable: isConnectionError(error) && !signal?.aborted,
      };
    }
    const status = response.statusCode;
    if (status !== 200) {
      await response.body.dump().catch(() => {});
      return { cause: `API answered ${status}`, status, retryable: retryableStatuses.has(status) };
    }
    const contentType = String(response.headers['content-type'] ?? '');
    let body: unknown;
    try {
      const text = await response.body.text();
      if (!/^application\/json\b/i.test(contentType)) {
        return {
          cause: `API answered ${contentType || 'no content type'}`,
          status,
          retryable: false,
        };
      }
      body = JSON.parse(text);
    } catch (error) {
      return {
        cause: `unreadable response: ${describeAttemptError(error, timeoutMs)}`,
        status,
        retryable: false,
      };
    }
    const identity = parseIdentity(body);
    return typeof identity === 'string'
      ? { cause: identity, status, retryable: false }
      : { identity };
  };

  const randomName: ApiClient['randomName'] = async ({ gender, signal } = {}) => {
    const query = gender ? `?${new URLSearchParams({ gender })}` : '';
    const path = `${basePath}/randomName${query}`;
    const deadlineAt = performance.now() + deadlineMs;
    for (let attempts = 1; ; attempts++) {
      const remainingMs = Math.floor(deadlineAt - performance.now());
      const outcome = await attempt(path, Math.max(1, Math.min(timeoutMs, remainingMs)), signal);
      if ('identity' in outcome) return outcome.identity;
      if (!outcome.retryable || attempts > retries) {
        throw new ApiUnavailableError(outcome.cause, { status: outcome.status, attempts });
      }
      logger.warn('retrying the identity API', { attempt: attempts, cause: outcome.cause });
      const pauseMs = backoffMs(attempts - 1);
      try {
        if (signal?.aborted || performance.now() + pauseMs >= deadlineAt)
          throw new Error('deadline');
        await sleep(pauseMs, signal);
      } catch {
        throw new ApiUnavailableError(
          `${outcome.cause}; gave up before retrying (deadline or caller)`,
          { attempts },
        );
      }
    }
  };

  return { randomName, deadlineMs, close: () => pool.close() };
};
