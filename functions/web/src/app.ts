import type { Logger } from '@secretid/lib/logger';
import type { Metrics } from '@secretid/lib/metrics';
import { serveOpenApi } from '@secretid/lib/openapi';
import { handleProblems, problem, refuseOtherMethods } from '@secretid/lib/problem';
import { Hono } from 'hono';
import { etag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import openapi from '../openapi.json' with { type: 'json' };
import { ApiUnavailableError, type Gender, genders, type IdentitySource } from './api-client.ts';
import { errorPage, type GenderChoice, identityPage, unavailablePage } from './page.ts';
import { stylesheet, stylesheetVersion } from './styles.ts';

export interface AppDeps {
  /** Where identities come from: the API client, or a fake in tests. */
  api: IdentitySource;
  metrics: Metrics;
  logger: Logger;
}

/** Seconds a browser is told to wait before retrying after the friendly 503 page. */
export const retryAfterSeconds = 5;

/** The Content-Security-Policy of every response: no scripts at all, styles from this origin. */
export const contentSecurityPolicy = {
  defaultSrc: ["'none'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'"],
  formAction: ["'self'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
};

// The same values as the api's `gender` (lower case, as the form sends them): a link that works
// on the page works against the api too.
const parseGenderChoice = (raw: string | undefined): GenderChoice => {
  const value = raw ?? '';
  if (value === '' || value === 'any') return 'any';
  if (genders.includes(value as Gender)) return value as Gender;
  throw problem(400, `gender must be any, female or male, got "${(raw ?? '').slice(0, 40)}"`);
};

/**
 * Creates the web function: the identity page, its stylesheet, probes and metrics.
 * @example const app = createApp({ api: createApiClient(...), metrics: createMetrics('web'), logger })
 */
export const createApp = (deps: AppDeps) => {
  const { api, metrics, logger } = deps;
  const app = new Hono();
  app.use(
    secureHeaders({
      contentSecurityPolicy,
      xFrameOptions: 'DENY',
      referrerPolicy: 'no-referrer',
      crossOriginOpenerPolicy: 'same-origin',
      crossOriginResourcePolicy: 'same-origin',
      permissionsPolicy: {
        camera: [],
        microphone: [],
        geolocation: [],
        payment: [],
        usb: [],
      },
      // The edge (Traefik) owns HSTS: only it knows whether the site is served over TLS.
      strictTransportSecurity: false,
    }),
  );
  handleProblems(app, logger, errorPage);

  app.get('/', async (c) => {
    const choice = parseGenderChoice(c.req.query('gender'));
    c.header('cache-control', 'no-store');
    try {
      // The incoming request's abort signal is deliberately not passed on: reading it makes
      // @hono/node-server build a full Request per page view, and the call is bounded anyway.
      const identity = await api.randomName({ gender: choice === 'any' ? undefined : choice });
      return c.html(identityPage(identity, choice));
    } catch (error) {
      if (!(error instanceof ApiUnavailableError)) throw error;
      logger.warn('identity API unavailable; showing the friendly page', {
        cause: error.cause,
        status: error.status,
        attempts: error.attempts,
      });
      c.header('retry-after', String(retryAfterSeconds));
      return c.html(unavailablePage(choice), 503);
    }
  });

  app.get('/styles.css', etag(), (c) => {
    // Immutable only for the version this revision ships: during a traffic split an old
    // version's URL may reach a new revision, and must not pin the new content for a year.
    const current = c.req.query('v') === stylesheetVersion;
    return c.body(stylesheet, 200, {
      'content-type': 'text/css; charset=utf-8',
      'cache-control': current ? 'public, max-age=31536000, immutable' : 'public, max-age=3600',
    });
  });

  // Browsers ask for an icon on their own; "no content" keeps that out of errors and logs.
  app.get('/favicon.ico', (c) => c.body(null, 204, { 'Cache-Control': 'public, max-age=86400' }));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  serveOpenApi(app, openapi);

  // Readiness deliberately does not call the API: the API scales to zero on Knative, so probing
  // it would wake it on every probe (keeping it from ever scaling down), and an API outage would
  // take the web function out of rotation too, replacing the friendly error page with the
  // platform's bare 503. This instance is ready as soon as it serves.
  app.get('/readyz', (c) => c.json({ status: 'ok' }));

  app.get('/metrics', async (c) =>
    c.body(await metrics.registry.metrics(), 200, {
      'content-type': metrics.registry.contentType,
      'cache-control': 'no-store',
    }),
  );

  refuseOtherMethods(app);
  metrics.instrument(app);
  return app;
};
