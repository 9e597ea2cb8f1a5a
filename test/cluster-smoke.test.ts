/**
 * The deploy's last step, run for real: the secretid_deploy role's smoke check (curl with
 * --resolve and --cacert, retried until the API gives an identity) against the real API bundle on
 * a real PostgreSQL, behind a loopback HTTPS front serving the certificate the chart generates.
 * Only the cluster is missing: the CA is taken from `helm template` instead of the cluster's
 * Secret, and the front stands where Traefik would.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test from 'ava';
import {
  ansibleDirectory,
  ansibleEnvironment,
  roleTasksPlaybook,
  runToolAsync,
} from './helpers/ansible.ts';
import { renderChart, secretText, theObject } from './helpers/helm.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { type Stack, startStack } from './helpers/stack.ts';

const release = 'secretid';
const scratch = mkdtempSync(join(tmpdir(), 'secretid-smoke-'));
let server: TestPostgres;
let stack: Stack;
let front: Server;
let frontPort = 0;
const hostsSeen: string[] = [];
let chartCa = '';

/** The chart's generated edge Secret: leaf certificate, key and CA. */
const edgeTls = () => {
  const secret = theObject(renderChart({ release, namespace: 'secretid' }), 'Secret', '-tls');
  return {
    cert: secretText(secret, 'tls.crt'),
    key: secretText(secret, 'tls.key'),
    ca: secretText(secret, 'ca.crt'),
  };
};

test.before(async () => {
  server = await startPostgres();
  const { readerUrl } = await createNamesDatabase(server);
  stack = await startStack({ databaseUrl: readerUrl });
  const tls = edgeTls();
  chartCa = tls.ca;
  // Where Traefik would be: TLS with the chart's certificate, then the request to the API.
  front = createServer({ cert: tls.cert, key: tls.key }, (incoming, outgoing) => {
    hostsSeen.push(incoming.headers.host ?? '');
    const upstream = httpRequest(
      { host: '127.0.0.1', port: stack.api.port, path: incoming.url, headers: incoming.headers },
      (response) => {
        outgoing.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(outgoing);
      },
    );
    upstream.on('error', () => outgoing.writeHead(502).end());
    incoming.pipe(upstream);
  });
  await new Promise<void>((listening) => front.listen(0, '127.0.0.1', listening));
  frontPort = (front.address() as AddressInfo).port;
});

test.after.always(async () => {
  await new Promise((closed) => (front ? front.close(closed) : closed(undefined)));
  await stack?.stop();
  server?.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs the role's smoke-check tasks on this machine with the CA given; returns the output. */
const smokeCheck = (name: string, ca: string) => {
  const work = join(scratch, name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, 'secretid-ca.crt'), ca);
  const playbook = roleTasksPlaybook(work, 'secretid_deploy', 'smoke-check.yml', 'localhost');
  return runToolAsync(
    'ansible-playbook',
    [
      '-i',
      'localhost,',
      '-c',
      'local',
      playbook,
      '-e',
      JSON.stringify({
        secretid_deploy_repository: resolve('.'),
        secretid_deploy_work_directory: work,
        secretid_deploy_smoke_address: '127.0.0.1',
        secretid_deploy_smoke_port: frontPort,
        secretid_deploy_smoke_retries: 2,
        secretid_deploy_smoke_delay: 1,
      }),
    ],
    'ansible',
    {
      cwd: ansibleDirectory,
      env: ansibleEnvironment(false, { ANSIBLE_ROLES_PATH: join(ansibleDirectory, 'roles') }),
    },
  );
};

test.serial("the smoke check gets an identity over HTTPS, trusting the chart's CA", async (t) => {
  const result = await smokeCheck('trusted', chartCa);
  t.is(result.status, 0, result.output);
  t.regex(result.output, /https:\/\/api\.secretid\/randomName answered [A-Z][a-z]+ [A-Z][a-z]+/);
  t.true(hostsSeen.includes(`api.secretid:${frontPort}`), hostsSeen.join(', '));
});

test.serial(
  'the smoke check fails when the certificate does not chain to the CA it was given',
  async (t) => {
    // Every render generates a new CA: this one did not sign the front's certificate.
    const otherCa = edgeTls().ca;
    t.not(otherCa, chartCa);
    const result = await smokeCheck('untrusted', otherCa);
    t.not(result.status, 0, result.output);
    t.regex(result.output, /SSL certificate problem|certificate verify failed|\(60\)/);
    t.notRegex(result.output, /answered/);
  },
);
