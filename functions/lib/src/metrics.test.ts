import test from 'ava';
import { Hono } from 'hono';
import { createMetrics, durationBuckets, metricNames } from './metrics.ts';

test('requests are counted and timed per route template in Prometheus histogram form', async (t) => {
  const metrics = createMetrics('demo');
  const app = new Hono();
  app.use(async (_c, next) => next());
  app.get('/agents/:id', (c) => c.text(c.req.param('id')));
  app.get('/healthz', (c) => c.text('ok'));
  metrics.instrument(app);
  for (const id of ['1', '2', '3']) await app.request(`/agents/${id}`);
  await app.request('/nowhere');
  await app.request('/healthz');
  const text = await metrics.registry.metrics();
  const series = 'method="GET",route="/agents/:id",status="200"';
  t.true(text.includes(`${metricNames.requests}{${series},service="demo"} 3`));
  t.true(text.includes(`# TYPE ${metricNames.duration} histogram`));
  t.true(text.includes(`${metricNames.duration}_count{${series},service="demo"} 3`));
  const buckets = [
    ...text.matchAll(
      new RegExp(
        `${metricNames.duration}_bucket\\{${series},le="([^"]+)",service="demo"\\} (\\d+)`,
        'g',
      ),
    ),
  ];
  t.deepEqual(
    buckets.map((match) => match[1]),
    [...durationBuckets.map(String), '+Inf'],
  );
  const counts = buckets.map((match) => Number(match[2]));
  t.true(
    counts.every((count, index) => index === 0 || count >= (counts[index - 1] as number)),
    'cumulative',
  );
  t.is(counts.at(-1), 3);
  t.true(text.includes(`route="unmatched",status="404"`));
  t.false(text.includes('/nowhere'));
  t.true(
    text.includes(
      `${metricNames.requests}{method="GET",route="/healthz",status="200",service="demo"} 1`,
    ),
  );
});
