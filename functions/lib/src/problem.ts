import type { Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from './logger.ts';

/** RFC 9457 problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
}

const titles: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Builds an `application/problem+json` response. */
export const problemResponse = (
  status: ContentfulStatusCode,
  detail: string,
  instance?: string,
  headers: Record<string, string> = {},
) =>
  new Response(
    JSON.stringify({
      type: 'about:blank',
      title: titles[status] ?? 'Error',
      status,
      detail,
      ...(instance ? { instance } : {}),
    } satisfies Problem),
    {
      status,
      headers: {
        'content-type': 'application/problem+json',
        'cache-control': 'no-store',
        ...headers,
      },
    },
  );

/**
 * Throws a typed HTTP error that `handleProblems` turns into a problem document.
 * @example throw problem(400, 'count must be an integer from 1 to 100')
 */
export const problem = (status: ContentfulStatusCode, detail: string) =>
  new HTTPException(status, { message: detail });

/** Turns every error and unknown route of an app into a problem document, in one place. */
export const handleProblems = (app: Hono, logger: Logger) => {
  app.notFound((c: Context) => problemResponse(404, `no route for ${c.req.path}`, c.req.path));
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return problemResponse(error.status as ContentfulStatusCode, error.message, c.req.path);
    }
    logger.error('unhandled error', { path: c.req.path, error: String(error) });
    return problemResponse(500, 'an unexpected error occurred; it has been logged', c.req.path);
  });
};

/**
 * Every path `app` serves with GET answers other methods with 405 and `Allow: GET, HEAD`
 * (RFC 9110, 15.5.6), instead of the 404 of a path that does not exist. Call it after the
 * routes. (Hono answers HEAD from the GET route.)
 */
export const refuseOtherMethods = (app: Hono) => {
  const paths = new Set(app.routes.filter((route) => route.method === 'GET').map((r) => r.path));
  for (const path of paths)
    app.all(path, (c) =>
      problemResponse(405, `${c.req.method} is not allowed here; use GET`, c.req.path, {
        allow: 'GET, HEAD',
      }),
    );
};
