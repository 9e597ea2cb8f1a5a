/**
 * Every pod the chart renders runs locked down: non-root, no privilege escalation, a read-only
 * root file system, no capabilities, the runtime's seccomp profile, bounded resources, nothing
 * from the host, and no service-account token unless its account may only read. The RBAC the
 * chart renders grants least privilege: exactly what kube-state-metrics collects and what
 * Prometheus discovers, read-only, no wildcards, no Secrets.
 */
import test from 'ava';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { parse } from 'yaml';
import {
  describe,
  installations,
  ofKind,
  onlyReads,
  type PodTemplate,
  podTemplates,
  type RbacRule,
  type RenderedObject,
  readOnlyVerbs,
  renderChart,
  rolesBoundTo,
  scenarioFiles,
  scenarioName,
  theObject,
  workloadKinds,
} from './helpers/helm.ts';

/** A render, with the namespace its bindings' subjects live in. */
interface Render {
  objects: RenderedObject[];
  namespace: string;
}

/**
 * Why a pod may not mount its service-account token, or undefined when it may: only a pod
 * whose ServiceAccount the output binds to Roles or ClusterRoles that are all rendered and
 * only read (get, list, watch) keeps its token; Prometheus and kube-state-metrics do.
 */
const tokenRefusal = ({ template }: PodTemplate, { objects, namespace }: Render) => {
  const account = template.spec?.serviceAccountName;
  if (!account) return 'it names no ServiceAccount';
  const roles = rolesBoundTo(objects, namespace, account);
  if (roles.length === 0) return `ServiceAccount ${account} is bound to no role in the output`;
  const writing = roles.filter((role) => !onlyReads(role));
  return writing.length > 0
    ? `ServiceAccount ${account} is bound to ${writing.map(describe).join(', ')}, which does more than read`
    : undefined;
};

/** Every way one pod template falls short of the hardening rules. */
const hardeningProblems = (podTemplate: PodTemplate, render: Render): string[] => {
  const { owner, template } = podTemplate;
  const pod = template.spec;
  const where = describe(owner);
  if (!pod) return [`${where}: no pod spec`];
  const problems: string[] = [];
  const podContext = pod.securityContext ?? {};
  if (pod.automountServiceAccountToken === true) {
    const refusal = tokenRefusal(podTemplate, render);
    if (refusal) problems.push(`${where}: mounts a service-account token, but ${refusal}`);
  } else if (pod.automountServiceAccountToken !== false) {
    problems.push(`${where}: automountServiceAccountToken is not false`);
  }
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC)
    problems.push(`${where}: shares a host namespace`);
  for (const volume of pod.volumes ?? []) {
    if (volume.hostPath) problems.push(`${where}: hostPath volume ${volume.name}`);
  }
  if (podContext.runAsUser === 0) problems.push(`${where}: pod runs as user 0`);
  const containers: IContainer[] = [
    ...(pod.initContainers ?? []),
    ...pod.containers,
    ...((pod.ephemeralContainers ?? []) as IContainer[]),
  ];
  for (const container of containers) {
    const at = `${where} container ${container.name}`;
    const context = container.securityContext ?? {};
    if ((context.runAsNonRoot ?? podContext.runAsNonRoot) !== true)
      problems.push(`${at}: runAsNonRoot is not true`);
    if ((context.runAsUser ?? podContext.runAsUser) === 0) problems.push(`${at}: runs as user 0`);
    if (context.allowPrivilegeEscalation !== false)
      problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (context.privileged) problems.push(`${at}: privileged`);
    if (context.readOnlyRootFilesystem !== true)
      problems.push(`${at}: root file system is writable`);
    if (!context.capabilities?.drop?.includes('ALL'))
      problems.push(`${at}: does not drop ALL capabilities`);
    if ((context.capabilities?.add ?? []).length > 0) problems.push(`${at}: adds capabilities`);
    if ((context.seccompProfile ?? podContext.seccompProfile)?.type !== 'RuntimeDefault') {
      problems.push(`${at}: seccomp profile is not RuntimeDefault`);
    }
    for (const bound of ['requests', 'limits'] as const) {
      for (const resource of ['cpu', 'memory']) {
        if (container.resources?.[bound]?.[resource] === undefined) {
          problems.push(`${at}: no ${bound}.${resource}`);
        }
      }
    }
    if (!container.image?.includes(':') || container.image.endsWith(':latest')) {
      problems.push(`${at}: image ${container.image} is not pinned to a tag`);
    }
  }
  return problems;
};

const renders = [
  ...scenarioFiles.flatMap((file) =>
    installations.map(({ release, namespace }) => ({
      label: `${scenarioName(file)} as ${release}`,
      namespace,
      objects: renderChart({ release, namespace, valuesFiles: [file] }),
    })),
  ),
  {
    label: 'monitoring off',
    namespace: 'default',
    objects: renderChart({ set: { 'monitoring.enabled': false } }),
  },
];

test('every pod template in every scenario is hardened', (t) => {
  const problems = renders.flatMap((render) =>
    podTemplates(render.objects).flatMap((pod) =>
      hardeningProblems(pod, render).map((problem) => `${render.label}: ${problem}`),
    ),
  );
  t.deepEqual(problems, []);
});

test('only Prometheus and kube-state-metrics mount a token, each for a read-only role', (t) => {
  for (const render of renders) {
    const mounting = podTemplates(render.objects)
      .filter(({ template }) => template.spec?.automountServiceAccountToken === true)
      .map(({ template }) => template.metadata?.labels?.['app.kubernetes.io/component'])
      .sort();
    t.deepEqual(
      mounting,
      render.label === 'monitoring off' ? [] : ['kube-state-metrics', 'prometheus'],
      render.label,
    );
  }
});

/** Whether a tree holds a list of containers anywhere (a pod spec, whatever its owner). */
const holdsContainers = (node: unknown): boolean =>
  Array.isArray(node)
    ? node.some(holdsContainers)
    : typeof node === 'object' && node !== null
      ? Object.entries(node).some(
          ([key, child]) =>
            (key === 'containers' && Array.isArray(child)) || holdsContainers(child),
        )
      : false;

test('every object that runs containers is a workload the check sees', (t) => {
  for (const file of scenarioFiles) {
    const objects = renderChart({ valuesFiles: [file] });
    const running = objects.filter(holdsContainers).map(describe);
    t.deepEqual(
      podTemplates(objects).map(({ owner }) => describe(owner)),
      running,
      `${scenarioName(file)}: an object with containers is not among the pod templates`,
    );
    t.true(running.length >= 2, 'PostgreSQL and the seed Job at least');
    for (const object of objects.filter(holdsContainers))
      t.true(workloadKinds.includes(object.kind));
  }
});

test('the check fires: each weakened setting is reported', (t) => {
  const objects = renderChart();
  const [pod] = podTemplates(objects).filter(({ owner }) => owner.kind === 'Job');
  const weakened = structuredClone(pod) as PodTemplate;
  const spec = weakened.template.spec as NonNullable<PodTemplate['template']['spec']>;
  spec.automountServiceAccountToken = true;
  spec.hostNetwork = true;
  spec.volumes = [...(spec.volumes ?? []), { name: 'host', hostPath: { path: '/' } }];
  const [init, second] = spec.initContainers as [IContainer, IContainer];
  init.securityContext = { ...init.securityContext, runAsUser: 0, allowPrivilegeEscalation: true };
  init.securityContext.capabilities = { drop: [], add: ['NET_ADMIN'] };
  second.securityContext = { runAsNonRoot: true };
  (spec.containers[0] as IContainer).resources = { requests: { cpu: '10m' } };
  delete spec.securityContext;
  const report = hardeningProblems(weakened, { objects, namespace: 'default' }).join('\n');
  for (const expected of [
    'mounts a service-account token, but it names no ServiceAccount',
    'shares a host namespace',
    'hostPath volume host',
    'container ensure-roles: runs as user 0',
    'container ensure-roles: allowPrivilegeEscalation is not false',
    'container ensure-roles: does not drop ALL capabilities',
    'container ensure-roles: adds capabilities',
    'container seed: root file system is writable',
    'container seed: seccomp profile is not RuntimeDefault',
    'container done: no requests.memory',
    'container done: no limits.cpu',
  ]) {
    t.true(report.includes(expected), `missing "${expected}" in:\n${report}`);
  }
});

test('PostgreSQL runs as the configured uid, and the data volume is group-owned by it', (t) => {
  const objects = renderChart({ set: { 'postgres.uid': 70 } });
  const statefulSet = objects.find((object) => object.kind === 'StatefulSet') as RenderedObject;
  const [pod] = podTemplates([statefulSet]);
  const spec = pod?.template.spec;
  t.like(spec?.securityContext, { runAsUser: 70, runAsGroup: 70, fsGroup: 70, runAsNonRoot: true });
  const containers = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
  t.true(containers.some((container) => container.name === 'postgres-exporter'));
  for (const container of containers) {
    // The exporter sidecar reads no file of PostgreSQL's: it runs as nobody (65534).
    const uid = container.name === 'postgres-exporter' ? 65534 : 70;
    t.like(container.securityContext, { runAsUser: uid, runAsGroup: uid }, container.name);
  }
});

/** A changed copy of a render (as secretid in default). */
const withRender = (objects: RenderedObject[], change: (copy: RenderedObject[]) => void) => {
  const copy = structuredClone(objects);
  change(copy);
  return { objects: copy, namespace: 'default' };
};
const podOf = (objects: RenderedObject[], suffix: string) =>
  podTemplates([theObject(objects, 'Deployment', suffix)]) as [PodTemplate];

test('the token check fires: a writing role, an unbound or foreign account, a missing role', (t) => {
  const objects = renderChart();
  const reportFor = (change: (copy: RenderedObject[]) => void) => {
    const render = withRender(objects, change);
    return hardeningProblems(podOf(render.objects, '-prometheus')[0], render).join('\n');
  };
  t.is(
    reportFor(() => undefined),
    '',
  );
  t.regex(
    reportFor((copy) => {
      const role = theObject(copy, 'ClusterRole', '-prometheus');
      (role.rules as RbacRule[]).push({ apiGroups: [''], resources: ['pods'], verbs: ['delete'] });
    }),
    /bound to ClusterRole\/default-secretid-prometheus, which does more than read/,
  );
  t.regex(
    reportFor((copy) => {
      const binding = theObject(copy, 'ClusterRoleBinding', '-prometheus');
      for (const subject of binding.subjects as { namespace: string }[]) {
        subject.namespace = 'elsewhere';
      }
    }),
    /ServiceAccount secretid-prometheus is bound to no role in the output/,
  );
  t.regex(
    reportFor((copy) => {
      theObject(copy, 'ClusterRoleBinding', '-prometheus').roleRef = {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'cluster-admin',
      };
    }),
    /cluster-admin \(not rendered\), which does more than read/,
  );
});

/** Where each kube-state-metrics collector's objects live: resource name to API group. */
const apiGroupOf: Record<string, string> = {
  configmaps: '',
  endpoints: '',
  limitranges: '',
  namespaces: '',
  nodes: '',
  persistentvolumeclaims: '',
  persistentvolumes: '',
  pods: '',
  replicationcontrollers: '',
  resourcequotas: '',
  secrets: '',
  serviceaccounts: '',
  services: '',
  daemonsets: 'apps',
  deployments: 'apps',
  replicasets: 'apps',
  statefulsets: 'apps',
  cronjobs: 'batch',
  jobs: 'batch',
  horizontalpodautoscalers: 'autoscaling',
  endpointslices: 'discovery.k8s.io',
  ingresses: 'networking.k8s.io',
  networkpolicies: 'networking.k8s.io',
  poddisruptionbudgets: 'policy',
  storageclasses: 'storage.k8s.io',
  volumeattachments: 'storage.k8s.io',
  leases: 'coordination.k8s.io',
};

/** A role's grants as "verb group/resource" strings, one per combination, sorted. */
const grants = (role: RenderedObject) =>
  [
    ...new Set(
      ((role.rules ?? []) as RbacRule[]).flatMap((rule) =>
        (rule.apiGroups ?? ['(none)']).flatMap((group) =>
          (rule.resources ?? rule.nonResourceURLs ?? []).flatMap((resource) =>
            rule.verbs.map((verb) => `${verb} ${group}/${resource}`),
          ),
        ),
      ),
    ),
  ].sort();

const rolesOf = (objects: RenderedObject[]) => [
  ...ofKind(objects, 'ClusterRole'),
  ...ofKind(objects, 'Role'),
];

/** kube-state-metrics' role: list and watch of exactly the kinds its --resources collects. */
const kubeStateMetricsProblems = (objects: RenderedObject[]) => {
  const [pod] = podOf(objects, '-kube-state-metrics');
  const args = pod.template.spec?.containers.flatMap((container) => container.args ?? []) ?? [];
  const flag = args.find((arg) => arg.startsWith('--resources='));
  if (!flag) return ['kube-state-metrics has no --resources flag: it would collect every kind'];
  const resources = flag.slice('--resources='.length).split(',');
  const unknown = resources.filter((resource) => !(resource in apiGroupOf));
  if (unknown.length > 0) return [`unknown kube-state-metrics collectors: ${unknown.join()}`];
  const expected = resources
    .flatMap((resource) =>
      ['list', 'watch'].map((verb) => `${verb} ${apiGroupOf[resource]}/${resource}`),
    )
    .sort();
  const role = theObject(objects, 'ClusterRole', '-kube-state-metrics');
  const found = grants(role);
  return JSON.stringify(found) === JSON.stringify(expected)
    ? []
    : [`${describe(role)} grants ${found.join(', ')}; --resources needs ${expected.join(', ')}`];
};

/** What each Kubernetes discovery role of prometheus.yml reads (Prometheus's discovery code). */
const discoveryNeeds: Record<string, string[]> = {
  pod: ['/pods'],
  node: ['/nodes'],
  service: ['/services'],
  endpoints: ['/endpoints', '/services', '/pods'],
  endpointslice: ['discovery.k8s.io/endpointslices', '/services', '/pods'],
  ingress: ['networking.k8s.io/ingresses'],
};

/**
 * Prometheus's role: get, list and watch of exactly what its configuration discovers, and get
 * on nodes/metrics for the kubelet job; nothing else.
 */
const prometheusRoleProblems = (objects: RenderedObject[]) => {
  const config = parse(
    (theObject(objects, 'ConfigMap', '-prometheus').data as Record<string, string>)[
      'prometheus.yml'
    ] ?? '',
  ) as {
    scrape_configs: {
      job_name: string;
      scheme?: string;
      kubernetes_sd_configs?: { role: string }[];
    }[];
  };
  const needed = new Set<string>();
  for (const job of config.scrape_configs) {
    for (const { role } of job.kubernetes_sd_configs ?? []) {
      for (const resource of discoveryNeeds[role] ?? [`unknown discovery role ${role}`]) {
        for (const verb of readOnlyVerbs) needed.add(`${verb} ${resource}`);
      }
      if (role === 'node' && job.scheme === 'https') needed.add('get /nodes/metrics');
    }
  }
  const expected = [...needed].sort();
  const role = theObject(objects, 'ClusterRole', '-prometheus');
  const found = grants(role);
  return JSON.stringify(found) === JSON.stringify(expected)
    ? []
    : [`${describe(role)} grants ${found.join(', ')}; prometheus.yml needs ${expected.join(', ')}`];
};

/** No role grants a wildcard, touches Secrets, or reaches beyond the API's resources. */
const rbacRuleProblems = (objects: RenderedObject[]) =>
  rolesOf(objects).flatMap((role) =>
    ((role.rules ?? []) as RbacRule[]).flatMap((rule, index) => {
      const at = `${describe(role)} rule ${index}`;
      const problems: string[] = [];
      const lists = [
        rule.apiGroups,
        rule.resources,
        rule.verbs,
        rule.resourceNames,
        rule.nonResourceURLs,
      ];
      if (lists.some((list) => (list ?? []).some((entry) => entry.includes('*'))))
        problems.push(`${at}: wildcard`);
      if ((rule.resources ?? []).some((resource) => resource.split('/')[0] === 'secrets'))
        problems.push(`${at}: grants access to Secrets`);
      if (rule.nonResourceURLs) problems.push(`${at}: grants non-resource URLs`);
      return problems;
    }),
  );

/** Every ServiceAccount refuses tokens by default; a pod that needs one asks for it. */
const serviceAccountProblems = (objects: RenderedObject[]) =>
  ofKind(objects, 'ServiceAccount')
    .filter((account) => account.automountServiceAccountToken !== false)
    .map((account) => `${describe(account)}: automountServiceAccountToken is not false`);

const leastPrivilege = {
  "kube-state-metrics' ClusterRole grants list and watch of exactly its --resources":
    kubeStateMetricsProblems,
  "Prometheus's ClusterRole reads exactly what its discovery needs, and nodes/metrics":
    prometheusRoleProblems,
  'no RBAC rule has a wildcard, touches Secrets or non-resource URLs': rbacRuleProblems,
  'ServiceAccounts do not mount tokens by default': serviceAccountProblems,
};

const monitoredRenders = renders.filter(({ label }) => label !== 'monitoring off');

for (const [title, check] of Object.entries(leastPrivilege)) {
  test(`least privilege: ${title}`, (t) => {
    t.true(monitoredRenders.length > 0);
    t.deepEqual(
      monitoredRenders.flatMap(({ label, objects }) =>
        check(objects).map((problem) => `${label}: ${problem}`),
      ),
      [],
    );
  });
}

test('the least-privilege checks fire', (t) => {
  const objects = renderChart();
  const broken = (change: (copy: RenderedObject[]) => void) => withRender(objects, change).objects;
  const role = (copy: RenderedObject[], suffix: string) =>
    theObject(copy, 'ClusterRole', suffix).rules as RbacRule[];
  t.regex(
    kubeStateMetricsProblems(
      broken((copy) => {
        role(copy, '-kube-state-metrics').push({
          apiGroups: [''],
          resources: ['configmaps'],
          verbs: ['list', 'watch'],
        });
      }),
    ).join(),
    /grants .*list \/configmaps/,
  );
  t.regex(
    kubeStateMetricsProblems(
      broken((copy) => {
        const container = podOf(copy, '-kube-state-metrics')[0].template.spec?.containers[0];
        container?.args?.splice(0, container.args.length, '--port=8080');
      }),
    ).join(),
    /no --resources flag/,
  );
  t.regex(
    prometheusRoleProblems(
      broken((copy) => {
        role(copy, '-prometheus').push({
          apiGroups: [''],
          resources: ['configmaps'],
          verbs: ['get'],
        });
      }),
    ).join(),
    /grants .*get \/configmaps/,
  );
  const count = (theObject(objects, 'ClusterRole', '-prometheus').rules as RbacRule[]).length;
  t.deepEqual(
    rbacRuleProblems(
      broken((copy) => {
        role(copy, '-prometheus').push(
          { apiGroups: ['*'], resources: ['pods'], verbs: ['get'] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
        );
      }),
    ),
    [
      `ClusterRole/default-secretid-prometheus rule ${count}: wildcard`,
      `ClusterRole/default-secretid-prometheus rule ${count + 1}: grants access to Secrets`,
    ],
  );
  t.regex(
    serviceAccountProblems(
      broken((copy) => {
        delete theObject(copy, 'ServiceAccount', '-prometheus').automountServiceAccountToken;
      }),
    ).join(),
    /ServiceAccount\/secretid-prometheus: automountServiceAccountToken is not false/,
  );
});
