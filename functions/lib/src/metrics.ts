import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import {
  collectDefaultMetrics,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';

/** Metric names the functions export; rules and dashboards refer to these. */
export const metricNames = {
  requests: 'http_requests_total',
  duration: 'http_request_duration_seconds',
} as const;

/** Upper bounds (seconds) of the duration histogram's buckets. */
export const durationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

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

type Labels = { method: string; route: string; status: string };

interface Series {
  labels: Labels;
  count: number;
  sum: number;
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  buckets: Float64Array;
}

/**
 * Request counts and durations kept per (method, route, status) series and rendered through
 * prom-client's registry. prom-client's own labelled counters validate and hash the labels on
 * every call, which cost about a fifth of a /randomName request; here the series is found once
 * per distinct key and each request only adds numbers.
 */
const createRequestMetrics = (registry: Registry) => {
  const series = new Map<string, Series>();
  const record = (method: string, route: string, status: string, seconds: number) => {
    const key = `${method} ${route} ${status}`;
    let entry = series.get(key);
    if (!entry) {
      entry = {
        labels: { method, route, status },
        count: 0,
        sum: 0,
        buckets: new Float64Array(durationBuckets.length + 1),
      };
      series.set(key, entry);
    }
    entry.count++;
    entry.sum += seconds;
    let bucket = 0;
    while (bucket < durationBuckets.length && seconds > (durationBuckets[bucket] as number))
      bucket++;
    (entry.buckets[bucket] as number)++;
  };
  const metric = <Type extends 'counter' | 'histogram'>(
    name: string,
    help: string,
    type: Type,
    values: () => MetricValue<string>[],
  ) =>
    registry.registerMetric({
      name,
      help,
      // biome-ignore lint/suspicious/noExplicitAny: prom-client's registry reads only get(), name and help
      get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }) as any,
      reset: () => series.clear(),
    } as unknown as Parameters<Registry['registerMetric']>[0]);
  metric(
    metricNames.requests,
    'HTTP requests handled, by method, route template and status code.',
    'counter',
    () => [...series.values()].map((entry) => ({ labels: entry.labels, value: entry.count })),
  );
  metric(
    metricNames.duration,
    'Time to produce a response, by method, route template and status code.',
    'histogram',
    () =>
      [...series.values()].flatMap((entry) => {
        let cumulative = 0;
        const bounds = [...durationBuckets.map(String), '+Inf'];
        return [
          ...bounds.map((le, index) => {
            cumulative += entry.buckets[index] as number;
            return {
              metricName: `${metricNames.duration}_bucket`,
              labels: { ...entry.labels, le },
              value: cumulative,
            };
          }),
          { metricName: `${metricNames.duration}_sum`, labels: entry.labels, value: entry.sum },
          { metricName: `${metricNames.duration}_count`, labels: entry.labels, value: entry.count },
        ];
      }),
  );
  return record;
};

/**
 * Creates the metrics of one service. Each call has its own registry, so tests stay isolated.
 * @example const metrics = createMetrics('api'); app.use(metrics.middleware)
 */
export const createMetrics = (service: string): Metrics => {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const record = createRequestMetrics(registry);
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now();
    await next();
    const template = routePath(c, -1);
    record(
      c.req.method,
      middlewareOnly.has(template) ? unmatchedRoute : template,
      String(c.res.status),
      (performance.now() - started) / 1000,
    );
  };
  return { registry, middleware };
};

export type { MetricObjectWithValues };
