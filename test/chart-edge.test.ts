import { createPrivateKey, X509Certificate } from 'node:crypto';
import test from 'ava';
import {
  type LabelSelector,
  ofKind,
  podTemplates,
  type RenderedObject,
  renderChart,
  scenarioFiles,
  scenarioName,
  secretText,
  selects,
  theObject,
} from './helpers/helm.ts';

const scenario = (name: string) => scenarioFiles.filter((file) => scenarioName(file) === name);

interface TlsMaterial {
  leaf: X509Certificate;
  ca: X509Certificate;
  key: string;
}

const tlsOf = (objects: RenderedObject[]): TlsMaterial => {
  const secret = theObject(objects, 'Secret', '-tls');
  return {
    leaf: new X509Certificate(secretText(secret, 'tls.crt')),
    ca: new X509Certificate(secretText(secret, 'ca.crt')),
    key: secretText(secret, 'tls.key'),
  };
};

const subjectAltNames = (certificate: X509Certificate) =>
  (certificate.subjectAltName ?? '')
    .split(', ')
    .map((entry) => entry.replace(/^DNS:/, ''))
    .sort();

const hostsOf = (domain: string) =>
  [
    `api.${domain}`,
    `web.${domain}`,
    `prometheus.${domain}`,
    `alertmanager.${domain}`,
    `candidate-api.${domain}`,
    `candidate-web.${domain}`,
    `*.${domain}`,
  ].sort();

test('the generated TLS Secret holds a leaf for every host, signed by its CA', (t) => {
  const objects = renderChart();
  const secret = theObject(objects, 'Secret', '-tls');
  t.is(secret.type, 'kubernetes.io/tls');
  t.deepEqual(Object.keys(secret.data as object).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  const { leaf, ca, key } = tlsOf(objects);
  t.deepEqual(subjectAltNames(leaf), hostsOf('secretid'));
  t.true(ca.ca, 'ca.crt is not a CA certificate');
  t.false(leaf.ca, 'the leaf must not be a CA');
  t.true(leaf.checkIssued(ca), 'the leaf is not issued by ca.crt');
  t.true(leaf.verify(ca.publicKey), 'the leaf signature does not verify with the CA key');
  t.true(leaf.checkPrivateKey(createPrivateKey(key)), 'tls.key does not match tls.crt');
  t.is(leaf.checkHost('api.secretid'), 'api.secretid');
  t.is(leaf.checkHost('web.secretid'), 'web.secretid');
  // OpenSSL (node:crypto, curl) honours no wildcard with one label after it, so *.secretid
  // covers nothing on the one-label default domain: tagged hosts are named (edge.tls.tags).
  t.is(leaf.checkHost('candidate-api.secretid'), 'candidate-api.secretid');
  t.is(leaf.checkHost('other-api.secretid'), undefined);
  const days = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 86_400_000;
  t.true(Math.abs(days - 825) <= 1, `valid for ${days} days`);
});

test('the generated CA lives in a Secret of its own, kept on uninstall, with its key; the leaf records when it expires', (t) => {
  const objects = renderChart();
  const caSecret = theObject(objects, 'Secret', '-edge-ca');
  t.is(caSecret.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
  const data = caSecret.data as Record<string, string>;
  t.deepEqual(Object.keys(data).sort(), ['ca.crt', 'ca.key']);
  const { leaf, ca } = tlsOf(objects);
  const stored = new X509Certificate(Buffer.from(data['ca.crt'] as string, 'base64'));
  t.is(stored.fingerprint256, ca.fingerprint256, 'the TLS Secret carries the same CA');
  t.true(stored.checkPrivateKey(createPrivateKey(Buffer.from(data['ca.key'] as string, 'base64'))));
  const caDays = (Date.parse(stored.validTo) - Date.parse(stored.validFrom)) / 86_400_000;
  t.true(Math.abs(caDays - 3650) <= 1, `the CA is valid for ${caDays} days`);
  const notAfter = theObject(objects, 'Secret', '-tls').metadata.annotations?.[
    'secretid.io/not-after'
  ];
  t.true(
    Math.abs(Date.parse(notAfter as string) - Date.parse(leaf.validTo)) < 120_000,
    `not-after ${notAfter} against the leaf's ${leaf.validTo}`,
  );
});

test('the domain value changes the names in the certificate, tagged hosts included', (t) => {
  const { leaf, ca } = tlsOf(renderChart({ set: { domain: 'agents.example.org' } }));
  t.deepEqual(subjectAltNames(leaf), hostsOf('agents.example.org'));
  t.falsy(leaf.checkHost('api.secretid'));
  t.true(leaf.verify(ca.publicKey));
  // With two labels in the domain the wildcard covers Knative's tagged hosts.
  t.is(leaf.checkHost('candidate-api.agents.example.org'), 'candidate-api.agents.example.org');
  t.is(leaf.checkHost('other-api.agents.example.org'), '*.agents.example.org');
});

test('cert-manager gets the same host names, and no certificate is generated', (t) => {
  const objects = renderChart({ valuesFiles: scenario('cert-manager') });
  const certificate = theObject(objects, 'Certificate');
  const spec = certificate.spec as { dnsNames: string[]; secretName: string; issuerRef: object };
  t.deepEqual([...spec.dnsNames].sort(), hostsOf('agents.example.org'));
  t.like(spec.issuerRef, {
    name: 'secretid-issuer',
    kind: 'ClusterIssuer',
    group: 'cert-manager.io',
  });
  t.false(
    objects.some((object) => object.kind === 'Secret' && object.type === 'kubernetes.io/tls'),
  );
  const route = theObject(objects, 'IngressRoute', '-functions');
  t.is((route.spec as { tls: { secretName: string } }).tls.secretName, spec.secretName);
});

test('an existing TLS Secret is used as it is, and nothing TLS is generated', (t) => {
  const objects = renderChart({ valuesFiles: scenario('existing-secret') });
  t.false(
    objects.some((object) => object.kind === 'Certificate' || object.type === 'kubernetes.io/tls'),
  );
  const route = theObject(objects, 'IngressRoute', '-functions');
  t.is((route.spec as { tls: { secretName: string } }).tls.secretName, 'agency-edge-tls');
});

const passwordKeys = [
  'superuser-password',
  'owner-password',
  'reader-password',
  'monitor-password',
];

const passwordsOf = (objects: RenderedObject[]) => {
  const secret = theObject(objects, 'Secret', '-credentials');
  return passwordKeys.map((key) => secretText(secret, key));
};

test('the credentials Secret holds four distinct random passwords, kept on uninstall', (t) => {
  const objects = renderChart();
  const secret = theObject(objects, 'Secret', '-credentials');
  t.deepEqual(Object.keys(secret.data as object).sort(), [...passwordKeys].sort());
  t.is(secret.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
  const passwords = passwordsOf(objects);
  for (const password of passwords) t.regex(password, /^[A-Za-z0-9]{32,}$/);
  t.is(new Set(passwords).size, passwordKeys.length);
  // Without a cluster, `lookup` finds nothing, so every render draws new passwords; on a
  // live cluster it returns the Secret and upgrades keep them (see chart/README.md).
  const again = passwordsOf(renderChart());
  t.true(again.every((password, index) => password !== passwords[index]));
});

test('an existing credentials Secret replaces the generated one', (t) => {
  const objects = renderChart({ valuesFiles: scenario('existing-secret') });
  t.false(objects.some((object) => object.metadata.name.endsWith('-credentials')));
});

interface Route {
  match: string;
  middlewares?: { name: string }[];
  services: {
    kind?: string;
    name: string;
    namespace?: string;
    port?: number;
    passHostHeader?: boolean;
  }[];
}
const routesOf = (route: RenderedObject) =>
  (route.spec as { routes: Route[]; entryPoints: string[] }).routes;

/** The regular expressions of a Traefik rule's HostRegexp matchers, as JavaScript RegExps. */
const hostRegexps = (rule: string) =>
  [...rule.matchAll(/HostRegexp\(`([^`]+)`\)/g)].map((match) => new RegExp(match[1] as string));
/** The exact hosts of a rule's Host matchers. */
const exactHosts = (rule: string) =>
  [...rule.matchAll(/Host\(`([^`]+)`\)/g)].map((match) => match[1]);
/** Whether a host matches a rule made of Host and HostRegexp matchers joined by ||. */
const ruleMatches = (rule: string, host: string) =>
  exactHosts(rule).includes(host) || hostRegexps(rule).some((pattern) => pattern.test(host));

test('api and web hosts, with their tagged hosts, go to Kourier with the Host header', (t) => {
  const objects = renderChart({
    set: {
      'edge.kourier.namespace': 'gateway',
      'edge.kourier.service': 'kourier-ext',
      'edge.kourier.port': 8080,
    },
  });
  const route = theObject(objects, 'IngressRoute', '-functions');
  t.deepEqual((route.spec as { entryPoints: string[] }).entryPoints, ['websecure']);
  const routes = routesOf(route);
  t.is(routes.length, 2);
  const headers = theObject(objects, 'Middleware', '-secure-headers');
  for (const { match, middlewares, services } of routes) {
    t.deepEqual(services, [
      {
        kind: 'Service',
        name: 'kourier-ext',
        namespace: 'gateway',
        port: 8080,
        passHostHeader: true,
      },
    ]);
    t.deepEqual(middlewares, [{ name: headers.metadata.name }]);
    t.is(hostRegexps(match).length, 1, match);
    // The functions' /metrics is for Prometheus inside the cluster, never through the edge.
    t.true(match.endsWith(' && !PathPrefix(`/metrics`)'), match);
  }
  const [api, web] = routes.map((entry) => entry.match) as [string, string];
  const expectations: [string, string, boolean][] = [
    [api, 'api.secretid', true],
    [api, 'candidate-api.secretid', true],
    [api, 'v2-api.secretid', true],
    [api, 'api.secretid.evil.com', false],
    [api, 'evil-api.secretid.com', false],
    [api, '-api.secretid', false],
    [api, 'candidate-apixsecretid', false],
    [api, 'web.secretid', false],
    [web, 'web.secretid', true],
    [web, 'v2-web.secretid', true],
    [web, 'candidate-web.secretid', true],
    [web, 'web.secretid.evil.com', false],
    [web, 'evil-web.secretid.com', false],
    [web, 'candidate-api.secretid', false],
  ];
  for (const [rule, host, expected] of expectations) {
    t.is(ruleMatches(rule, host), expected, `${rule} on ${host}`);
  }
});

test('the host rules follow the domain and escape its dots', (t) => {
  const objects = renderChart({ set: { domain: 'agents.example.org' } });
  const [api] = routesOf(theObject(objects, 'IngressRoute', '-functions')).map(
    (entry) => entry.match,
  ) as [string];
  t.true(ruleMatches(api, 'api.agents.example.org'));
  t.true(ruleMatches(api, 'candidate-api.agents.example.org'));
  t.false(ruleMatches(api, 'candidate-api.agentsxexample.org'));
  t.false(ruleMatches(api, 'candidate-api.secretid'));
});

test('plain HTTP only redirects to HTTPS, for every host the edge serves', (t) => {
  const objects = renderChart();
  const route = theObject(objects, 'IngressRoute', '-http');
  t.deepEqual((route.spec as { entryPoints: string[] }).entryPoints, ['web']);
  t.false('tls' in (route.spec as object));
  const [http] = routesOf(route) as [Route];
  const redirect = theObject(objects, 'Middleware', '-redirect-https');
  t.deepEqual(http.middlewares, [{ name: redirect.metadata.name }]);
  t.deepEqual(redirect.spec, { redirectScheme: { scheme: 'https', permanent: true } });
  t.deepEqual(http.services, [{ kind: 'TraefikService', name: 'noop@internal' }]);
  for (const host of ['api.secretid', 'web.secretid', 'prometheus.secretid', 'v2-web.secretid']) {
    t.true(ruleMatches(http.match, host), host);
  }
  t.false(ruleMatches(http.match, 'api.secretid.evil.com'));
});

test('TLS 1.2 at least, and HSTS on every HTTPS answer', (t) => {
  const objects = renderChart();
  const option = theObject(objects, 'TLSOption');
  t.is((option.spec as { minVersion: string }).minVersion, 'VersionTLS12');
  const strict = renderChart({ set: { 'edge.tls.minVersion': 'VersionTLS13' } });
  t.is((theObject(strict, 'TLSOption').spec as { minVersion: string }).minVersion, 'VersionTLS13');
  const headers = theObject(objects, 'Middleware', '-secure-headers').spec as {
    headers: { stsSeconds: number; stsIncludeSubdomains: boolean; forceSTSHeader: boolean };
  };
  t.true(headers.headers.stsSeconds > 0);
  t.is(headers.headers.stsSeconds, 31_536_000);
  t.true(headers.headers.forceSTSHeader);
  // By default they are Traefik's default TLS options: every host, tag hosts and clients
  // without SNI included, so the routes name none (a route naming options gets 421 for a
  // client whose SNI chose the default ones).
  t.is(option.metadata.name, 'default');
  t.false((option.spec as { sniStrict: boolean }).sniStrict);
  for (const suffix of ['-functions', '-prometheus']) {
    const route = theObject(objects, 'IngressRoute', suffix);
    t.is((route.spec as { tls: { options?: unknown } }).tls.options, undefined, suffix);
  }
  // Beside another default: options of their own, by name, with strict SNI.
  const named = renderChart({ set: { 'edge.tls.defaultOptions': false } });
  const own = theObject(named, 'TLSOption', '-edge');
  t.true((own.spec as { sniStrict: boolean }).sniStrict);
  for (const suffix of ['-functions', '-prometheus']) {
    const route = theObject(named, 'IngressRoute', suffix);
    t.is(
      (route.spec as { tls: { options: { name: string } } }).tls.options.name,
      own.metadata.name,
      suffix,
    );
  }
});

test('the Prometheus basic-auth Secret has the one shape Traefik reads with a username and password', (t) => {
  const objects = renderChart();
  const secret = theObject(objects, 'Secret', '-prometheus-basic-auth');
  // Traefik's basicAuth takes a kubernetes.io/basic-auth Secret's username and password, or an
  // Opaque Secret of exactly one key of htpasswd lines; with any other shape (as the chart once
  // had: users, username and password in one Opaque Secret) it drops the middleware and the
  // route, and prometheus.<domain> answers 404 (the cluster suite shows the route working).
  t.is((secret as { type?: string }).type, 'kubernetes.io/basic-auth');
  t.deepEqual(Object.keys(secret.data as object).sort(), ['password', 'username']);
  t.is(secretText(secret, 'username'), 'admin');
  const password = secretText(secret, 'password');
  t.regex(password, /^[A-Za-z0-9]{32}$/);
  // Every render without a cluster draws a new password (lookup finds nothing).
  const again = secretText(
    theObject(renderChart(), 'Secret', '-prometheus-basic-auth'),
    'password',
  );
  t.not(again, password);
  const renamed = renderChart({ set: { 'prometheus.basicAuth.username': 'watcher' } });
  t.is(secretText(theObject(renamed, 'Secret', '-prometheus-basic-auth'), 'username'), 'watcher');
  t.false(
    objects.some(
      (object) => object.kind === 'Secret' && object.metadata.name.endsWith('-prometheus-auth'),
    ),
  );
});

test('an existing basic-auth Secret replaces the generated one', (t) => {
  const objects = renderChart({ set: { 'prometheus.basicAuth.existingSecret': 'agency-users' } });
  t.false(
    objects.some(
      (object) =>
        object.metadata.name.endsWith('-prometheus-basic-auth') && object.kind === 'Secret',
    ),
  );
  const middleware = theObject(objects, 'Middleware', '-prometheus-auth');
  t.is((middleware.spec as { basicAuth: { secret: string } }).basicAuth.secret, 'agency-users');
});

test('prometheus.<domain> goes to Prometheus on 9090 and alertmanager.<domain> to Alertmanager on 9093, behind basic auth first', (t) => {
  for (const domain of ['secretid', 'agents.example.org']) {
    const objects = renderChart({ set: { domain } });
    const route = theObject(objects, 'IngressRoute', '-prometheus');
    const spec = route.spec as {
      entryPoints: string[];
      routes: Route[];
      tls: { secretName: string; options: { name: string } };
    };
    t.deepEqual(spec.entryPoints, ['websecure']);
    // Prometheus, then Alertmanager behind the same middlewares.
    t.is(spec.routes.length, 2);
    const [only, alertmanager] = spec.routes as [Route, Route];
    t.is(only.match, `Host(\`prometheus.${domain}\`)`);
    t.is(alertmanager.match, `Host(\`alertmanager.${domain}\`)`);
    t.deepEqual(alertmanager.middlewares, only.middlewares);
    t.deepEqual(alertmanager.services, [
      {
        kind: 'Service',
        name: theObject(objects, 'Service', '-alertmanager').metadata.name,
        port: 9093,
      },
    ]);
    t.deepEqual(hostRegexps(only.match), []);
    t.true(ruleMatches(only.match, `prometheus.${domain}`));
    for (const host of [`api.${domain}`, `prometheus.${domain}.evil.com`, `x-prometheus.${domain}`])
      t.false(ruleMatches(only.match, host), host);
    const service = theObject(objects, 'Service', '-prometheus');
    t.deepEqual(only.services, [{ kind: 'Service', name: service.metadata.name, port: 9090 }]);
    t.true((service.spec as { ports: { port: number }[] }).ports.some(({ port }) => port === 9090));
    const auth = theObject(objects, 'Middleware', '-prometheus-auth');
    const headers = theObject(objects, 'Middleware', '-secure-headers');
    // Basic auth first: nothing else runs for a request without the password.
    t.deepEqual(only.middlewares, [{ name: auth.metadata.name }, { name: headers.metadata.name }]);
    t.like(auth.spec, {
      basicAuth: {
        secret: theObject(objects, 'Secret', '-prometheus-basic-auth').metadata.name,
        removeHeader: true,
      },
    });
    const functions = theObject(objects, 'IngressRoute', '-functions').spec as typeof spec;
    t.deepEqual(spec.tls, functions.tls);
    t.true(
      new X509Certificate(secretText(theObject(objects, 'Secret', '-tls'), 'tls.crt')).checkHost(
        `prometheus.${domain}`,
      ) !== undefined,
    );
  }
});

test("Prometheus's NetworkPolicy admits only Traefik's namespace, on 9090", (t) => {
  for (const traefikNamespace of ['kube-system', 'traefik']) {
    const objects = renderChart({ set: { 'monitoring.traefikNamespace': traefikNamespace } });
    const [prometheus] = podTemplates([theObject(objects, 'Deployment', '-prometheus')]);
    const labels = (prometheus?.template.metadata?.labels ?? {}) as Record<string, string>;
    const policy = theObject(objects, 'NetworkPolicy', '-prometheus');
    const spec = policy.spec as {
      podSelector: LabelSelector;
      policyTypes: string[];
      ingress: unknown[];
    };
    t.true(selects(spec.podSelector, labels));
    t.true(spec.policyTypes.includes('Ingress'));
    t.deepEqual(spec.ingress, [
      {
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': traefikNamespace } },
          },
        ],
        ports: [{ protocol: 'TCP', port: 9090 }],
      },
    ]);
    // No other policy lets anything else in to Prometheus.
    const others = ofKind(objects, 'NetworkPolicy').filter((other) => {
      const otherSpec = other.spec as { podSelector: LabelSelector; ingress?: unknown[] };
      return (
        other !== policy &&
        selects(otherSpec.podSelector, labels) &&
        (otherSpec.ingress ?? []).length > 0
      );
    });
    t.deepEqual(
      others.map((other) => other.metadata.name),
      [],
    );
  }
});
