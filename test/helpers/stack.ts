import { existsSync } from 'node:fs';
import { request } from 'undici';
import { bundles } from '../../scripts/build.ts';
import { startEdge } from '../../scripts/edge.ts';
import { localHosts } from '../../scripts/local-hosts.ts';
import { type FunctionProcess, spawnFunction, waitUntilReady } from '../../scripts/processes.ts';
import { freePort } from './free-port.ts';

/** The bundled functions as separate processes behind the local edge. */
export interface Stack {
  edgeUrl: string;
  api: FunctionProcess;
  web: FunctionProcess;
  /** GET through the edge with a Host header (fetch would replace Host; undici keeps it). */
  get(host: string, path: string): Promise<EdgeResponse>;
  stop(): Promise<void>;
}

/** A response read through the edge. */
export interface EdgeResponse {
  status: number;
  headers: Headers;
  text(): Promise<string>;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
  json(): Promise<any>;
}

/** Sends a GET to the edge with an explicit Host header, like `curl -H 'Host: ...'`. */
export const getThroughEdge = async (
  edgeUrl: string,
  host: string,
  path: string,
): Promise<EdgeResponse> => {
  const response = await request(`${edgeUrl}${path}`, {
    headers: { host },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return {
    status: response.statusCode,
    headers,
    text: () => response.body.text(),
    json: () => response.body.json(),
  };
};

export const requireBundles = () => {
  for (const bundle of [bundles.api, bundles.web]) {
    if (!existsSync(bundle.output)) {
      throw new Error(`${bundle.output} is missing: run "npm run build" first (npm test does)`);
    }
  }
};

/** Starts the production bundles against a database and an edge in front of them. */
export const startStack = async (options: {
  databaseUrl: string;
  apiEnv?: Record<string, string>;
  webEnv?: Record<string, string>;
}): Promise<Stack> => {
  requireBundles();
  const api = spawnFunction({
    name: 'api',
    script: bundles.api.output,
    port: await freePort(),
    env: { DATABASE_URL: options.databaseUrl, ...options.apiEnv },
  });
  const web = spawnFunction({
    name: 'web',
    script: bundles.web.output,
    port: await freePort(),
    env: { API_URL: `http://127.0.0.1:${api.port}`, ...options.webEnv },
  });
  try {
    await waitUntilReady(api, `http://127.0.0.1:${api.port}/readyz`);
    await waitUntilReady(web, `http://127.0.0.1:${web.port}/readyz`);
  } catch (error) {
    await Promise.all([api.stop(), web.stop()]);
    throw error;
  }
  const edge = await startEdge({
    port: 0,
    routes: {
      [localHosts.api]: `http://127.0.0.1:${api.port}`,
      [localHosts.web]: `http://127.0.0.1:${web.port}`,
      localhost: `http://127.0.0.1:${web.port}`,
    },
  });
  const edgeUrl = `http://127.0.0.1:${edge.port}`;
  return {
    edgeUrl,
    api,
    web,
    get: (host, path) => getThroughEdge(edgeUrl, host, path),
    stop: async () => {
      await edge.close();
      await Promise.all([api.stop(), web.stop()]);
    },
  };
};
