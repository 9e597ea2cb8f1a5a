/**
 * Every pod the chart renders runs locked down: non-root, no privilege escalation, a read-only
 * root file system, no capabilities, the runtime's seccomp profile, bounded resources, no
 * service-account token, nothing from the host.
 */
import test from 'ava';
import type { IContainer } from 'kubernetes-models/v1/Container';
import {
  describe,
  installations,
  type PodTemplate,
  podTemplates,
  type RenderedObject,
  renderChart,
  scenarioFiles,
  scenarioName,
  workloadKinds,
} from './helpers/helm.ts';

/** Pods that talk to the Kubernetes API and so keep their token, by component; none yet. */
const podsNeedingTheApi: string[] = [];

/** Every way one pod template falls short of the hardening rules. */
const hardeningProblems = ({ owner, template }: PodTemplate): string[] => {
  const pod = template.spec;
  const where = describe(owner);
  if (!pod) return [`${where}: no pod spec`];
  const problems: string[] = [];
  const podContext = pod.securityContext ?? {};
  const component = template.metadata?.labels?.['app.kubernetes.io/component'] ?? '';
  if (pod.automountServiceAccountToken !== false && !podsNeedingTheApi.includes(component)) {
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

const rendersOf = () =>
  scenarioFiles.flatMap((file) =>
    installations.map(({ release, namespace }) => ({
      label: `${scenarioName(file)} as ${release}`,
      objects: renderChart({ release, namespace, valuesFiles: [file] }),
    })),
  );

test('every pod template in every scenario is hardened', (t) => {
  const renders = rendersOf();
  const problems = renders.flatMap(({ label, objects }) =>
    podTemplates(objects).flatMap((pod) =>
      hardeningProblems(pod).map((problem) => `${label}: ${problem}`),
    ),
  );
  t.deepEqual(problems, []);
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
  const [pod] = podTemplates(renderChart()).filter(({ owner }) => owner.kind === 'Job');
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
  const report = hardeningProblems(weakened).join('\n');
  for (const expected of [
    'automountServiceAccountToken is not false',
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
  for (const container of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    t.like(container.securityContext, { runAsUser: 70, runAsGroup: 70 });
  }
});
