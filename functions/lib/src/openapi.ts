import type { Hono } from 'hono';

/**
 * Serves a function's OpenAPI document (kept beside its package.json) at `/openapi.json`,
 * serialised once. `no-cache`: a client may keep it but asks again, since during a traffic
 * split another revision may answer with another contract.
 * @example serveOpenApi(app, openapi)
 */
export const serveOpenApi = (app: Hono, document: object) => {
  const body = JSON.stringify(document);
  app.get(
    '/openapi.json',
    () =>
      new Response(body, {
        headers: { 'content-type': 'application/json', 'cache-control': 'no-cache' },
      }),
  );
};
