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

/** Renders a problem as an HTML page for a browser; see `handleProblems`. */
export type ProblemPage = (status: number, title: string, detail: string) => string;

/** True when a client asks for HTML before JSON, as a browser's navigation does. */
const wantsHtml = (accept: string | undefined) => {
  if (!accept) return false;
  const html = accept.indexOf('text/html');
  if (html < 0) return false;
  const json = accept.search(/application\/(problem\+)?json/);
  return json < 0 || html < json;
};

/**
 * Turns every error and unknown route of an app into a problem document, in one place; with
 * `page`, a browser (Accept: text/html before any JSON) gets the same status as an HTML page.
 */
export const handleProblems = (app: Hono, logger: Logger, page?: ProblemPage) => {
  const answer = (c: Context, status: ContentfulStatusCode, detail: string) =>
    page && wantsHtml(c.req.header('accept'))
      ? c.html(page(status, titles[status] ?? 'Error', detail), status, {
          'cache-control': 'no-store',
        })
      : problemResponse(status, detail, c.req.path);
  app.notFound((c: Context) => answer(c, 404, `no route for ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      return answer(c, error.status as ContentfulStatusCode, error.message);
    }
    logger.error('unhandled error', { path: c.req.path, error: String(error) });
    return answer(c, 500, 'an unexpected error occurred; it has been logged');
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
