import { connect } from 'node:net';
import { type Dispatcher, Pool } from 'undici';

/**
 * Connection-level failures that a client may see while a server stops accepting: the request
 * got no response (undici rejects before any response headers arrived). Anything else counts as
 * a lost request.
 */
export const connectionErrorCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'UND_ERR_SOCKET',
]);

const errorCode = (error: unknown): string => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') return code;
  return typeof message === 'string' ? message : String(error);
};

/** True for an error raised before a response: refused, reset, or "other side closed". */
export const isConnectionError = (error: unknown): boolean => {
  if (connectionErrorCodes.has(errorCode(error))) return true;
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' && /other side closed/i.test(message);
};

/** Why a value is not an identity as `GET /randomName` returns it, or undefined when it is. */
export const identityProblem = (value: unknown): string | undefined => {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const { firstName, lastName, fullName, gender } = value as Record<string, unknown>;
  if (typeof firstName !== 'string' || firstName === '') return 'no firstName';
  if (typeof lastName !== 'string' || lastName === '') return 'no lastName';
  if (fullName !== `${firstName} ${lastName}`) return `fullName is ${JSON.stringify(fullName)}`;
  if (gender !== 'female' && gender !== 'male') return `gender is ${JSON.stringify(gender)}`;
  return undefined;
};

/** What one request ended with. */
export type Outcome =
  | { kind: 'ok'; at: number }
  | { kind: 'connection-error'; at: number; code: string }
  | { kind: 'failure'; at: number; reason: string };

/**
 * Sends one GET and reads the whole answer: `ok` only for a 200 with a complete JSON identity;
 * `connection-error` when the request failed before any response; `failure` otherwise
 * (another status, a truncated or unreadable body, any other error).
 */
export const getIdentity = async (dispatcher: Dispatcher, path: string): Promise<Outcome> => {
  let response: Dispatcher.ResponseData;
  try {
    response = await dispatcher.request({
      method: 'GET',
      path,
      headers: { accept: 'application/json' },
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
  } catch (error) {
    const at = performance.now();
    return isConnectionError(error)
      ? { kind: 'connection-error', at, code: errorCode(error) }
      : { kind: 'failure', at, reason: `request failed: ${errorCode(error)}` };
  }
  let text: string;
  try {
    text = await response.body.text();
  } catch (error) {
    return {
      kind: 'failure',
      at: performance.now(),
      reason: `HTTP ${response.statusCode} body cut off: ${errorCode(error)}`,
    };
  }
  const at = performance.now();
  if (response.statusCode !== 200) {
    return { kind: 'failure', at, reason: `HTTP ${response.statusCode}: ${text.slice(0, 200)}` };
  }
  let problem: string | undefined;
  try {
    problem = identityProblem(JSON.parse(text));
  } catch {
    problem = `unparsable body (${text.length} bytes): ${text.slice(0, 80)}`;
  }
  return problem ? { kind: 'failure', at, reason: problem } : { kind: 'ok', at };
};

/** Totals of a load run. */
export interface LoadReport {
  requests: number;
  ok: number;
  outcomes: Outcome[];
  /** Connection-level errors by code. */
  connectionErrors: Record<string, number>;
  failures: string[];
  /** Successes that completed before a moment (a `performance.now()` value). */
  okBefore(at: number): number;
}

export const summarize = (outcomes: Outcome[]): LoadReport => {
  const connectionErrors: Record<string, number> = {};
  const failures: string[] = [];
  let ok = 0;
  for (const outcome of outcomes) {
    if (outcome.kind === 'ok') ok++;
    else if (outcome.kind === 'connection-error') {
      connectionErrors[outcome.code] = (connectionErrors[outcome.code] ?? 0) + 1;
    } else failures.push(outcome.reason);
  }
  return {
    requests: outcomes.length,
    ok,
    outcomes,
    connectionErrors,
    failures,
    okBefore: (at) => outcomes.filter((o) => o.kind === 'ok' && o.at < at).length,
  };
};

/** A steady load that is running. */
export interface Load {
  /** Successes so far. */
  ok(): number;
  /** Stops the workers after their current request and reports. */
  stop(): Promise<LoadReport>;
  /** Resolves when the load ended by itself (duration or request cap) or was stopped. */
  done: Promise<LoadReport>;
}

/**
 * Starts `workers` loops that each send sequential keep-alive GETs to `origin + path` (one
 * connection per worker) until `durationMs` passed, `maxRequests` were sent, or `stop()`.
 * After a connection error a worker pauses `pauseAfterErrorMs` so a stopped server is not
 * hammered.
 */
export const startLoad = (options: {
  origin: string;
  path: string;
  workers: number;
  durationMs: number;
  maxRequests: number;
  pauseAfterErrorMs?: number;
}): Load => {
  const pool = new Pool(options.origin, {
    connections: options.workers,
    pipelining: 1,
    keepAliveTimeout: 30_000,
  });
  const outcomes: Outcome[] = [];
  const endsAt = performance.now() + options.durationMs;
  let stopped = false;
  let sent = 0;
  const worker = async () => {
    while (!stopped && performance.now() < endsAt && sent < options.maxRequests) {
      sent++;
      const outcome = await getIdentity(pool, options.path);
      outcomes.push(outcome);
      if (outcome.kind !== 'ok') {
        await new Promise((resolve) => setTimeout(resolve, options.pauseAfterErrorMs ?? 10));
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.workers }, worker)).then(async () => {
    await pool.destroy();
    return summarize(outcomes);
  });
  return {
    ok: () => outcomes.filter((o) => o.kind === 'ok').length,
    stop: () => {
      stopped = true;
      return done;
    },
    done,
  };
};

/** Opens a TCP connection and closes it at once: 'accepted', or the error code. */
export const tryConnect = (port: number, host = '127.0.0.1') =>
  new Promise<string>((resolve) => {
    const socket = connect({ port, host });
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('accepted');
    });
    socket.once('error', (error) => resolve(errorCode(error)));
  });

/** Resolves true once `condition()` holds, false after `timeoutMs`. */
export const waitFor = async (condition: () => boolean, timeoutMs: number, everyMs = 5) => {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return true;
};

/** A raw HTTP/1.1 answer read off a socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Set when the connection failed before a complete response. */
  error?: string;
}

/**
 * Opens a connection and sends all of a GET but the blank line that ends its headers, so the
 * server has a request in progress (its connection is not idle) for as long as the caller likes.
 * `finish()` sends the rest and reads the complete response (by Content-Length).
 */
export const startPartialRequest = async (port: number, path: string) => {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = Buffer.alloc(0);
  let failure: string | undefined;
  let notify = () => {};
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    notify();
  });
  socket.on('error', (error) => {
    failure = errorCode(error);
    notify();
  });
  socket.on('close', () => {
    failure ??= 'closed';
    notify();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  await new Promise<void>((resolve, reject) =>
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: application/json\r\n`,
      (error) => (error ? reject(error) : resolve()),
    ),
  );
  /** The parsed response once complete, or undefined while more is expected. */
  const parse = (): RawResponse | undefined => {
    const text = received.toString('latin1');
    const headerEnd = text.indexOf('\r\n\r\n');
    if (headerEnd === -1) return undefined;
    const [statusLine = '', ...lines] = text.slice(0, headerEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? Number.NaN);
    const body = received.subarray(Buffer.byteLength(text.slice(0, headerEnd + 4), 'latin1'));
    if (Number.isNaN(length) || body.length < length) return undefined;
    return { status: Number(statusLine.split(' ')[1]), headers, body: body.toString('utf8') };
  };
  return {
    finish: (timeoutMs = 5000) =>
      new Promise<RawResponse>((resolve) => {
        const timer = setTimeout(() => settle('timeout'), timeoutMs);
        let settled = false;
        const settle = (error?: string) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          socket.destroy();
          resolve({
            ...(parse() ?? { status: 0, headers: {}, body: received.toString('utf8') }),
            ...(error ? { error } : {}),
          });
        };
        notify = () => {
          if (parse()) settle();
          else if (failure) settle(failure);
        };
        if (failure) settle(failure);
        else socket.write('\r\n');
      }),
    destroy: () => socket.destroy(),
  };
};
