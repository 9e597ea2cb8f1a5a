import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Metric names the functions export; rules and dashboards refer to these. */
export const metricNames = {
  requests: 'http_requests_total',
  duration: 'http_request_duration_seconds',
} as const;

/** Route label for requests that matched no route, so raw paths never become labels. */
export const unmatchedRoute = 'unmatched';

// When only catch-all middleware matched, routePath() reports the middleware's own pattern.
const middlewareOnly = new Set(['*', '/*']);

/** A registry with process metrics and RED metrics for one service. */
export interface Metrics {
  registry: Registry;
  /** Records every request by method, route template and status. */
  middleware: MiddlewareHandler;
}

/**
 * Creates the metrics of one service. Each call has its own registry, so tests stay isolated.
 * @example const metrics = createMetrics('api'); app.use(metrics.middleware)
 */
export const createMetrics = (service: string): Metrics => {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: metricNames.requests,
    help: 'HTTP requests handled, by method, route template and status code.',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: metricNames.duration,
    help: 'Time to produce a response, by method, route template and status code.',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now();
    await next();
    const template = routePath(c, -1);
    const labels = {
      method: c.req.method,
      route: middlewareOnly.has(template) ? unmatchedRoute : template,
      status: String(c.res.status),
    };
    requests.inc(labels);
    duration.observe(labels, (performance.now() - started) / 1000);
  };
  return { registry, middleware };
};
