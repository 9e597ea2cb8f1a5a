/**
 * Cross-references inside the rendered chart, and from it to the code: a Service that selects
 * no pod, a port, Secret key or middleware that does not exist, or an environment variable the
 * code never reads fails here, in every scenario and for both installations.
 */
import { join } from 'node:path';
import test from 'ava';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { functionEnvironment, libpqVariables, namesRead } from './helpers/environment.ts';
import {
  chartDirectory,
  describe,
  effectiveValues,
  externalPodLabels,
  installations,
  type LabelSelector,
  type Labels,
  ofKind,
  type PodTemplate,
  podTemplates,
  type RenderedObject,
  type RenderOptions,
  renderChart,
  scenarioFiles,
  scenarioName,
  selects,
  stringValue,
  valueAt,
} from './helpers/helm.ts';

/** One render with what it was asked for. */
interface Render {
  label: string;
  release: string;
  namespace: string;
  values: Record<string, unknown>;
  objects: RenderedObject[];
}

const render = (label: string, options: RenderOptions): Render => ({
  label,
  release: options.release ?? 'secretid',
  namespace: options.namespace ?? 'default',
  values: effectiveValues(options),
  objects: renderChart(options),
});

const renders: Render[] = [
  ...scenarioFiles.flatMap((file) =>
    installations.map(({ release, namespace }) =>
      render(`${scenarioName(file)} as ${release}/${namespace}`, {
        release,
        namespace,
        valuesFiles: [file],
      }),
    ),
  ),
  render('non-default port, database, roles, key name and Kourier', {
    release: 'agency-7',
    namespace: 'field-ops',
    set: {
      'postgres.port': 6543,
      'postgres.database': 'identities',
      'credentials.roles.owner': 'identity_owner',
      'credentials.roles.reader': 'identity_reader',
      'credentials.keys.readerPassword': 'api-password',
      'edge.kourier.namespace': 'gateway',
      'edge.kourier.port': 8080,
    },
  }),
];

const spec = <T>(object: RenderedObject) => (object.spec ?? {}) as T;
const containersOf = (pod: IPodSpec | undefined): IContainer[] => [
  ...(pod?.initContainers ?? []),
  ...(pod?.containers ?? []),
];
const hasPort = (containers: IContainer[], port: string | number) =>
  containers.some((container) =>
    (container.ports ?? []).some((declared) =>
      typeof port === 'string' ? declared.name === port : declared.containerPort === port,
    ),
  );
const podLabels = ({ template }: PodTemplate): Labels =>
  (template.metadata?.labels ?? {}) as Labels;
const byName = (objects: RenderedObject[], kind: string, name: string) =>
  objects.find((object) => object.kind === kind && object.metadata.name === name);

/** Services select pods of the output, and their target ports are those pods' ports. */
const serviceProblems = ({ objects }: Render) => {
  const templates = podTemplates(objects);
  return ofKind(objects, 'Service').flatMap((service) => {
    const { selector, ports = [] } = spec<{
      selector?: Labels;
      ports?: { name?: string; port: number; targetPort?: string | number }[];
    }>(service);
    if (!selector || Object.keys(selector).length === 0)
      return [`${describe(service)}: no selector`];
    const selected = templates.filter((pod) => selects({ matchLabels: selector }, podLabels(pod)));
    if (selected.length === 0) return [`${describe(service)}: selects no pod template`];
    return ports.flatMap((port) => {
      const target = port.targetPort ?? port.port;
      return selected
        .filter(({ template }) => !hasPort(template.spec?.containers ?? [], target))
        .map(
          ({ owner }) =>
            `${describe(service)}: targetPort ${target} is not a port of ${describe(owner)}`,
        );
    });
  });
};

/** A StatefulSet's serviceName is a headless Service selecting its pods; selectors match templates. */
const workloadProblems = ({ objects }: Render) =>
  podTemplates(objects).flatMap(({ owner, template }) => {
    const problems: string[] = [];
    const { selector, serviceName } = spec<{ selector?: LabelSelector; serviceName?: string }>(
      owner,
    );
    if (
      owner.kind !== 'Job' &&
      owner.kind !== 'CronJob' &&
      !selects(selector, template.metadata?.labels as Labels)
    ) {
      problems.push(`${describe(owner)}: its selector does not select its own pod template`);
    }
    if (owner.kind === 'StatefulSet') {
      const service = byName(objects, 'Service', serviceName ?? '');
      const serviceSpec = service
        ? spec<{ clusterIP?: string; selector?: Labels }>(service)
        : undefined;
      if (!serviceSpec)
        problems.push(`${describe(owner)}: serviceName ${serviceName} is not rendered`);
      else if (serviceSpec.clusterIP !== 'None')
        problems.push(`${describe(owner)}: Service ${serviceName} is not headless`);
      else if (
        !selects({ matchLabels: serviceSpec.selector ?? {} }, template.metadata?.labels as Labels)
      ) {
        problems.push(`${describe(owner)}: Service ${serviceName} does not select its pods`);
      }
    }
    return problems;
  });

/** Key sets of the Secrets and ConfigMaps a pod may use: rendered, or provided outside. */
const keyStores = ({ objects, values }: Pick<Render, 'objects' | 'values'>) => {
  const keysOf = (object: RenderedObject, ...fields: string[]) =>
    new Set(fields.flatMap((field) => Object.keys((object[field] ?? {}) as object)));
  const secrets = new Map(
    ofKind(objects, 'Secret').map((secret) => [
      secret.metadata.name,
      keysOf(secret, 'data', 'stringData'),
    ]),
  );
  const configMaps = new Map(
    ofKind(objects, 'ConfigMap').map((map) => [
      map.metadata.name,
      keysOf(map, 'data', 'binaryData'),
    ]),
  );
  // Documented external Secrets: the values name them and the keys they must hold.
  const credentials = stringValue(values, 'credentials.existingSecret');
  if (credentials) {
    secrets.set(credentials, new Set(Object.values(valueAt(values, 'credentials.keys') as Labels)));
  }
  if (stringValue(values, 'edge.tls.source') === 'existingSecret') {
    secrets.set(stringValue(values, 'edge.tls.existingSecret'), new Set(['tls.crt', 'tls.key']));
  }
  return { secrets, configMaps };
};

/** Every Secret, ConfigMap, key, claim and mount a pod names exists. */
const podReferenceProblems = (current: Render) => {
  const { objects } = current;
  const { secrets, configMaps } = keyStores(current);
  const claims = new Set(
    ofKind(objects, 'PersistentVolumeClaim').map((claim) => claim.metadata.name),
  );
  const check = (where: string, kind: 'Secret' | 'ConfigMap', name = '', keys: string[] = []) => {
    const store = (kind === 'Secret' ? secrets : configMaps).get(name);
    if (!store)
      return [`${where}: ${kind} ${name} is neither rendered nor a documented external one`];
    return keys
      .filter((key) => !store.has(key))
      .map((key) => `${where}: ${kind} ${name} has no key ${key}`);
  };
  return podTemplates(objects).flatMap(({ owner, template }) => {
    const pod = template.spec;
    const volumes = pod?.volumes ?? [];
    const templateClaims = (
      spec<{ volumeClaimTemplates?: { metadata?: { name?: string } }[] }>(owner)
        .volumeClaimTemplates ?? []
    ).map((claim) => claim.metadata?.name);
    const problems = volumes.flatMap((volume) => {
      const where = `${describe(owner)} volume ${volume.name}`;
      const items = (list?: { key: string }[]) => (list ?? []).map((item) => item.key);
      return [
        ...(volume.secret
          ? check(where, 'Secret', volume.secret.secretName, items(volume.secret.items))
          : []),
        ...(volume.configMap
          ? check(where, 'ConfigMap', volume.configMap.name, items(volume.configMap.items))
          : []),
        ...(volume.projected?.sources ?? []).flatMap((source) => [
          ...(source.secret
            ? check(where, 'Secret', source.secret.name, items(source.secret.items))
            : []),
          ...(source.configMap
            ? check(where, 'ConfigMap', source.configMap.name, items(source.configMap.items))
            : []),
        ]),
        ...(volume.persistentVolumeClaim &&
        !claims.has(volume.persistentVolumeClaim.claimName) &&
        !templateClaims.includes(volume.persistentVolumeClaim.claimName)
          ? [`${where}: claim ${volume.persistentVolumeClaim.claimName} is not rendered`]
          : []),
        ...(volume.hostPath ? [`${where}: hostPath`] : []),
      ];
    });
    for (const container of containersOf(pod)) {
      const where = `${describe(owner)} container ${container.name}`;
      for (const { name, valueFrom } of container.env ?? []) {
        const { secretKeyRef: secret, configMapKeyRef: map } = valueFrom ?? {};
        if (secret)
          problems.push(...check(`${where} env ${name}`, 'Secret', secret.name, [secret.key]));
        if (map) problems.push(...check(`${where} env ${name}`, 'ConfigMap', map.name, [map.key]));
      }
      for (const source of container.envFrom ?? []) {
        if (source.secretRef) problems.push(...check(where, 'Secret', source.secretRef.name));
        if (source.configMapRef)
          problems.push(...check(where, 'ConfigMap', source.configMapRef.name));
      }
      for (const mount of container.volumeMounts ?? []) {
        if (
          !volumes.some((volume) => volume.name === mount.name) &&
          !templateClaims.includes(mount.name)
        ) {
          problems.push(`${where}: mounts ${mount.name}, which is no volume of the pod`);
        }
      }
    }
    return problems;
  });
};

/** Claims bind to the rendered volume and the volume is reserved for that claim. */
const volumeProblems = ({ objects, namespace }: Render) =>
  ofKind(objects, 'PersistentVolumeClaim').flatMap((claim) => {
    const { volumeName } = spec<{ volumeName?: string }>(claim);
    if (!volumeName) return [];
    const volume = byName(objects, 'PersistentVolume', volumeName);
    if (!volume) return [`${describe(claim)}: volume ${volumeName} is not rendered`];
    const { claimRef } = spec<{ claimRef?: { name?: string; namespace?: string } }>(volume);
    return claimRef?.name === claim.metadata.name && claimRef.namespace === namespace
      ? []
      : [
          `${describe(volume)}: claimRef ${JSON.stringify(claimRef)} is not ${namespace}/${claim.metadata.name}`,
        ];
  });

/** Probes point at ports their container declares. */
const probeProblems = ({ objects }: Render) =>
  podTemplates(objects).flatMap(({ owner, template }) =>
    containersOf(template.spec).flatMap((container) =>
      (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).flatMap((kind) => {
        const probe = container[kind];
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
        return port === undefined || hasPort([container], port)
          ? []
          : [
              `${describe(owner)} container ${container.name}: ${kind} port ${port} is not declared`,
            ];
      }),
    ),
  );

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}
interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: { port?: number | string; protocol?: string }[];
}

/**
 * NetworkPolicies select pods that exist (in the output or among the external workloads),
 * and a rule's ports are ports of the pods it opens.
 */
const networkPolicyProblems = ({ objects, release }: Render) => {
  const templates = podTemplates(objects);
  const external = externalPodLabels(release);
  const selectedTemplates = (selector?: LabelSelector) =>
    templates.filter((pod) => selects(selector, podLabels(pod)));
  const selectsSomething = (selector?: LabelSelector) =>
    selectedTemplates(selector).length > 0 || external.some((labels) => selects(selector, labels));
  const portProblems = (where: string, ports: PolicyRule['ports'], pods: PodTemplate[]) =>
    (ports ?? []).flatMap(({ port }) =>
      port === undefined
        ? []
        : pods
            .filter(({ template }) => !hasPort(template.spec?.containers ?? [], port))
            .map(({ owner }) => `${where}: port ${port} is not a port of ${describe(owner)}`),
    );
  return ofKind(objects, 'NetworkPolicy').flatMap((policy) => {
    const {
      podSelector,
      ingress = [],
      egress = [],
    } = spec<{
      podSelector?: LabelSelector;
      ingress?: PolicyRule[];
      egress?: PolicyRule[];
    }>(policy);
    const where = describe(policy);
    const problems = selectsSomething(podSelector) ? [] : [`${where}: podSelector selects no pod`];
    const samePodPeers = (peers: PolicyPeer[] = []) =>
      peers.filter((peer) => peer.podSelector && !peer.namespaceSelector);
    for (const rule of ingress) {
      for (const peer of samePodPeers(rule.from)) {
        if (!selectsSomething(peer.podSelector))
          problems.push(`${where}: an ingress peer selects no pod`);
      }
      problems.push(
        ...portProblems(`${where} ingress`, rule.ports, selectedTemplates(podSelector)),
      );
    }
    for (const rule of egress) {
      for (const peer of samePodPeers(rule.to)) {
        if (!selectsSomething(peer.podSelector))
          problems.push(`${where}: an egress peer selects no pod`);
        problems.push(
          ...portProblems(`${where} egress`, rule.ports, selectedTemplates(peer.podSelector)),
        );
      }
    }
    return problems;
  });
};

interface Route {
  middlewares?: { name: string; namespace?: string }[];
  services?: { kind?: string; name: string; namespace?: string; port?: number | string }[];
}

/** IngressRoutes name middlewares, TLS options, Secrets and Services that exist. */
const ingressRouteProblems = ({ objects, values, namespace }: Render) => {
  const { secrets } = keyStores({ objects, values });
  const certificateSecrets = ofKind(objects, 'Certificate').map(
    (certificate) => spec<{ secretName: string }>(certificate).secretName,
  );
  const kourier = {
    name: stringValue(values, 'edge.kourier.service'),
    namespace: stringValue(values, 'edge.kourier.namespace'),
    port: valueAt(values, 'edge.kourier.port'),
  };
  return ofKind(objects, 'IngressRoute').flatMap((route) => {
    const where = describe(route);
    const { routes = [], tls } = spec<{
      routes?: Route[];
      tls?: { secretName?: string; options?: { name: string; namespace?: string } };
    }>(route);
    const problems: string[] = [];
    for (const { middlewares = [], services = [] } of routes) {
      for (const middleware of middlewares) {
        if (
          (middleware.namespace ?? namespace) !== namespace ||
          !byName(objects, 'Middleware', middleware.name)
        ) {
          problems.push(`${where}: middleware ${middleware.name} is not rendered`);
        }
      }
      for (const service of services) {
        if (service.kind === 'TraefikService') {
          if (
            !service.name.endsWith('@internal') &&
            !byName(objects, 'TraefikService', service.name)
          ) {
            problems.push(`${where}: TraefikService ${service.name} does not exist`);
          }
        } else if ((service.namespace ?? namespace) !== namespace) {
          const target = { name: service.name, namespace: service.namespace, port: service.port };
          if (JSON.stringify(target) !== JSON.stringify(kourier)) {
            problems.push(
              `${where}: service ${JSON.stringify(target)} is not Kourier ${JSON.stringify(kourier)}`,
            );
          }
        } else if (!byName(objects, 'Service', service.name)) {
          problems.push(`${where}: Service ${service.name} is not rendered`);
        }
      }
    }
    if (tls) {
      const options = tls.options;
      if (
        options &&
        ((options.namespace ?? namespace) !== namespace ||
          !byName(objects, 'TLSOption', options.name))
      ) {
        problems.push(`${where}: TLSOption ${options.name} is not rendered`);
      }
      const name = tls.secretName ?? '';
      const keys = secrets.get(name);
      const issued = certificateSecrets.includes(name);
      if (!issued && !(keys?.has('tls.crt') && keys.has('tls.key'))) {
        problems.push(
          `${where}: TLS Secret ${name} is neither rendered, issued by cert-manager nor external`,
        );
      }
    }
    return problems;
  });
};

const envValue = (container: IContainer | undefined, name: string) =>
  container?.env?.find((variable) => variable.name === name)?.value;
const findContainer = (objects: RenderedObject[], kind: string, name: string) =>
  podTemplates(ofKind(objects, kind))
    .flatMap(({ template }) => containersOf(template.spec))
    .find((container) => container.name === name);

/** Every database client names the PostgreSQL Service's DNS name, port, database and its role. */
const databaseAddressProblems = ({ objects, values, namespace }: Render) => {
  const service = ofKind(objects, 'Service').find(
    (candidate) =>
      spec<{ clusterIP?: string }>(candidate).clusterIP !== 'None' &&
      candidate.metadata.name.endsWith('-postgres'),
  );
  if (!service) return ['no PostgreSQL Service'];
  const host = `${service.metadata.name}.${namespace}.svc`;
  const port = String(spec<{ ports: { port: number }[] }>(service).ports[0]?.port);
  const database = stringValue(values, 'postgres.database');
  const roles = valueAt(values, 'credentials.roles') as { owner: string; reader: string };
  const problems: string[] = [];
  const checkUrl = (where: string, text: string | undefined, role: string) => {
    const url = new URL(text ?? 'invalid:');
    const found = `${url.protocol}//${url.username}@${url.hostname}:${url.port || '5432'}${url.pathname}`;
    const expected = `postgres://${role}@${host}:${port}/${database}`;
    if (found !== expected) problems.push(`${where}: DATABASE_URL ${found}, expected ${expected}`);
    if (url.password) problems.push(`${where}: DATABASE_URL carries a password`);
  };
  if (ofKind(objects, 'Job').length > 0) {
    checkUrl(
      'seed Job',
      envValue(findContainer(objects, 'Job', 'seed'), 'DATABASE_URL'),
      roles.owner,
    );
    const ensureRoles = findContainer(objects, 'Job', 'ensure-roles');
    const address = `${envValue(ensureRoles, 'PGHOST')}:${envValue(ensureRoles, 'PGPORT')}/${envValue(ensureRoles, 'DATABASE')}`;
    if (address !== `${host}:${port}/${database}`)
      problems.push(`ensure-roles: connects to ${address}`);
  }
  const apiEnvironment = ofKind(objects, 'ConfigMap').find((map) =>
    map.metadata.name.endsWith('-api-env'),
  );
  checkUrl(
    'API ConfigMap',
    (apiEnvironment?.data as Labels | undefined)?.DATABASE_URL,
    roles.reader,
  );
  return problems;
};

const apiReads = functionEnvironment.api;
const seederReads = namesRead('db-seed/src/cli.ts', /process\.env\.([A-Z0-9_]+)/g);
const ensureRolesReads = namesRead(
  join(chartDirectory, 'files/postgres/ensure-roles.sh'),
  /\$\{?!?([A-Z][A-Z0-9_]+)/g,
);

/** The environment the chart writes is what the code reads. */
const environmentProblems = ({ objects }: Render) => {
  const problems: string[] = [];
  const unread = (where: string, names: string[], read: Set<string>) =>
    names
      .filter((name) => !read.has(name) && !libpqVariables.has(name))
      .forEach((name) => {
        problems.push(`${where}: ${name} is not read by the code`);
      });
  const apiEnvironment = ofKind(objects, 'ConfigMap').find((map) =>
    map.metadata.name.endsWith('-api-env'),
  );
  unread('API ConfigMap', Object.keys((apiEnvironment?.data ?? {}) as object), apiReads);
  const names = (container?: IContainer) => (container?.env ?? []).map((variable) => variable.name);
  if (ofKind(objects, 'Job').length > 0) {
    unread('seed container', names(findContainer(objects, 'Job', 'seed')), seederReads);
    unread(
      'ensure-roles container',
      names(findContainer(objects, 'Job', 'ensure-roles')),
      ensureRolesReads,
    );
  }
  return problems;
};

const checks = {
  'Services select rendered pods and target their ports': serviceProblems,
  'StatefulSets have a headless governing Service; selectors match their templates':
    workloadProblems,
  'Secrets, ConfigMaps, keys, claims and mounts that pods name exist': podReferenceProblems,
  'the claim binds the rendered NFS volume, reserved for that claim': volumeProblems,
  'probes point at declared container ports': probeProblems,
  'NetworkPolicies select existing pods and open their real ports': networkPolicyProblems,
  'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier': ingressRouteProblems,
  'database clients use the PostgreSQL Service DNS name, port, database and role':
    databaseAddressProblems,
  'the environment the chart sets is what the API, seeder and role script read':
    environmentProblems,
};

for (const [title, check] of Object.entries(checks)) {
  test(title, (t) => {
    t.deepEqual(
      renders.flatMap((current) => check(current).map((problem) => `${current.label}: ${problem}`)),
      [],
    );
  });
}

test('the code-side name lists are not empty (the greps still find something)', (t) => {
  t.true(apiReads.has('DATABASE_URL') && apiReads.has('DB_POOL_MAX'), [...apiReads].join());
  t.true(
    seederReads.has('DATABASE_URL') && seederReads.has('READER_ROLE'),
    [...seederReads].join(),
  );
  t.true(ensureRolesReads.has('OWNER_PASSWORD'), [...ensureRolesReads].join());
});

/** A copy of the NFS render (as agency-7) with some changes, to show that a check notices. */
const mutated = (change: (objects: RenderedObject[]) => void): Render => {
  const base = renders.find((current) => current.label.startsWith('nfs as agency-7')) as Render;
  const objects = structuredClone(base.objects);
  change(objects);
  return { ...base, objects };
};

/** Sets a path (dotted, or a list for keys with dots) in the object of a kind and name suffix. */
const change =
  (kind: string, suffix: string, path: string | string[], value: unknown) =>
  (objects: RenderedObject[]) => {
    const target = objects.find(
      (object) => object.kind === kind && object.metadata.name.endsWith(suffix),
    );
    const keys = typeof path === 'string' ? path.split('.') : [...path];
    const last = keys.pop() as string;
    const parent = keys.reduce<unknown>(
      (node, key) => (node as Record<string, unknown>)[key],
      target,
    ) as Record<string, unknown>;
    parent[last] = value;
  };
const postgresPod = 'spec.template.spec';
const apply =
  (...changes: ((objects: RenderedObject[]) => void)[]) =>
  (objects: RenderedObject[]) => {
    for (const one of changes) one(objects);
  };

const drift: [string, (objects: RenderedObject[]) => void, keyof typeof checks, RegExp][] = [
  [
    'a Service targets a port no container has',
    change('Service', '-postgres', 'spec.ports.0.targetPort', 'postgresql'),
    'Services select rendered pods and target their ports',
    /targetPort postgresql/,
  ],
  [
    'a Service selects a component nobody runs',
    change('Service', '-postgres', ['spec', 'selector', 'app.kubernetes.io/component'], 'db'),
    'Services select rendered pods and target their ports',
    /selects no pod template/,
  ],
  [
    'the StatefulSet names a Service that is not headless',
    change('StatefulSet', '-postgres', 'spec.serviceName', 'agency-7-secretid-postgres'),
    'StatefulSets have a headless governing Service; selectors match their templates',
    /is not headless/,
  ],
  [
    'a secretKeyRef names a key the Secret lacks',
    change('Secret', '-credentials', 'data', { 'superuser-password': 'eA==' }),
    'Secrets, ConfigMaps, keys, claims and mounts that pods name exist',
    /has no key owner-password/,
  ],
  [
    'a volume names a claim that is not rendered',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.volumes.0.persistentVolumeClaim.claimName`,
      'data',
    ),
    'Secrets, ConfigMaps, keys, claims and mounts that pods name exist',
    /claim data is not rendered/,
  ],
  [
    'the NFS volume is reserved for another claim',
    change('PersistentVolume', '-postgres-data', 'spec.claimRef.namespace', 'default'),
    'the claim binds the rendered NFS volume, reserved for that claim',
    /claimRef/,
  ],
  [
    'a probe points at an undeclared port',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.containers.0.livenessProbe.tcpSocket.port`,
      'pg',
    ),
    'probes point at declared container ports',
    /livenessProbe port pg/,
  ],
  [
    'a NetworkPolicy selects a component nobody runs',
    change(
      'NetworkPolicy',
      '-postgres',
      ['spec', 'podSelector', 'matchLabels', 'app.kubernetes.io/component'],
      'database',
    ),
    'NetworkPolicies select existing pods and open their real ports',
    /podSelector selects no pod/,
  ],
  [
    'a NetworkPolicy opens a port PostgreSQL does not listen on',
    change('NetworkPolicy', '-postgres', 'spec.ingress.0.ports.0.port', 5433),
    'NetworkPolicies select existing pods and open their real ports',
    /port 5433 is not a port/,
  ],
  [
    'an IngressRoute names a missing middleware and TLS option',
    apply(
      change('IngressRoute', '-functions', 'spec.routes.0.middlewares.0.name', 'headers'),
      change('IngressRoute', '-functions', 'spec.tls.options.name', 'modern'),
    ),
    'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier',
    /middleware headers[\s\S]*TLSOption modern/,
  ],
  [
    'an IngressRoute sends traffic to a Kourier port the values do not name',
    change('IngressRoute', '-functions', 'spec.routes.1.services.0.port', 8080),
    'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier',
    /is not Kourier/,
  ],
  [
    'the seed Job connects to the wrong port',
    change(
      'Job',
      '-seed',
      `${postgresPod}.initContainers.1.env.0.value`,
      'postgres://secretid_owner@agency-7-secretid-postgres.field-ops.svc:5433/secretid',
    ),
    'database clients use the PostgreSQL Service DNS name, port, database and role',
    /seed Job: DATABASE_URL .*:5433/,
  ],
  [
    'the API ConfigMap sets a variable the API never reads',
    change('ConfigMap', '-api-env', 'data.DB_POOL_SIZE', '4'),
    'the environment the chart sets is what the API, seeder and role script read',
    /DB_POOL_SIZE is not read/,
  ],
];

for (const [what, broken, title, expected] of drift) {
  test(`drift is caught: ${what}`, (t) => {
    t.regex(checks[title](mutated(broken)).join('\n'), expected);
  });
}
