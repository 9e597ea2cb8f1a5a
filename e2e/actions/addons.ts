/**
 * What a k3s server brings besides Kubernetes, as the Ansible-built cluster has it: cluster
 * DNS (CoreDNS), a default storage class for ReadWriteOnce claims (local-path-provisioner),
 * and Traefik v3 as the edge (CRD provider with cross-namespace routes, entry points web and
 * websecure on ports 80 and 443 of every node, metrics on 9100), all in kube-system.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Action } from '../lib/action.ts';
import { HarnessError, run, waitUntil } from '../lib/run.ts';
import { clusterDnsAddress, clusterDomain, nodes, paths, roleDefault } from '../lib/settings.ts';
import {
  corednsImage,
  imageReferences,
  localPathImage,
  toolboxImage,
  traefikImage,
} from './images.ts';
import { traefikFiles } from './traefik-files.ts';

type Manifest = Record<string, unknown>;
const system = 'kube-system';
const reference = (image: Parameters<typeof imageReferences>[0]) =>
  imageReferences(image)[0] as string;
const meta = (
  name: string,
  labels: Record<string, string> = { 'app.kubernetes.io/name': name },
) => ({
  name,
  namespace: system,
  labels,
});
const serviceAccount = (name: string): Manifest => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: meta(name),
});
const clusterRole = (name: string, rules: unknown[]): Manifest[] => [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: `secretid-e2e:${name}` },
    rules,
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: `secretid-e2e:${name}` },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: `secretid-e2e:${name}`,
    },
    subjects: [{ kind: 'ServiceAccount', name, namespace: system }],
  },
];

/** Where each node's local-path volumes live (one folder per node: nodes share the disk). */
export const localPathRoot = (node: string) => `${paths.nodes}/${node}/local-path`;
/**
 * The storage classes: `local-path` (the default, ReadWriteOnce, a volume stays on its node,
 * as k3s has it) and `shared-path`, a folder every node sees (all access modes, no node
 * affinity), standing in for NFS, which this VM's kernel lacks: like NFS it lets a pod move
 * to another node with its data, and like NFS it does not enforce access modes.
 */
export const storageClasses = { local: 'local-path', shared: 'shared-path' } as const;
export const sharedPathRoot = () => `${paths.nodes}/shared-path`;

const coredns = (): Manifest[] => [
  serviceAccount('coredns'),
  ...clusterRole('coredns', [
    {
      apiGroups: [''],
      resources: ['endpoints', 'services', 'pods', 'namespaces'],
      verbs: ['list', 'watch'],
    },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  ]),
  {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta('coredns'),
    data: {
      // No forward plugin: names outside the cluster are not resolved, so no query leaves.
      Corefile: `.:53 {
    errors
    health :8080
    ready :8181
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    cache 30
    reload
}
`,
    },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta('coredns', { 'k8s-app': 'kube-dns' }),
    spec: {
      replicas: 1,
      selector: { matchLabels: { 'k8s-app': 'kube-dns' } },
      template: {
        metadata: { labels: { 'k8s-app': 'kube-dns' } },
        spec: {
          serviceAccountName: 'coredns',
          priorityClassName: 'system-cluster-critical',
          dnsPolicy: 'Default',
          containers: [
            {
              name: 'coredns',
              image: reference(corednsImage),
              args: ['-conf', '/etc/coredns/Corefile'],
              ports: [
                { name: 'dns', containerPort: 53, protocol: 'UDP' },
                { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
              livenessProbe: { httpGet: { path: '/health', port: 8080 }, periodSeconds: 10 },
              resources: { requests: { cpu: '20m', memory: '32Mi' }, limits: { memory: '128Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
              volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
        },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('kube-dns', { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'CoreDNS' }),
    spec: {
      clusterIP: clusterDnsAddress,
      selector: { 'k8s-app': 'kube-dns' },
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'metrics', port: 9153, protocol: 'TCP' },
      ],
    },
  },
];

const localPath = (): Manifest[] => [
  serviceAccount('local-path-provisioner'),
  ...clusterRole('local-path-provisioner', [
    {
      apiGroups: [''],
      resources: ['nodes', 'persistentvolumeclaims', 'configmaps', 'pods', 'pods/log'],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: [''],
      resources: ['persistentvolumes'],
      verbs: ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'],
    },
    { apiGroups: [''], resources: ['pods'], verbs: ['create', 'delete'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    {
      apiGroups: ['storage.k8s.io'],
      resources: ['storageclasses'],
      verbs: ['get', 'list', 'watch'],
    },
  ]),
  {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta('local-path-config'),
    data: {
      'config.json': JSON.stringify({
        nodePathMap: [],
        storageClassConfigs: {
          [storageClasses.local]: {
            nodePathMap: nodes.map((node) => ({
              node: node.name,
              paths: [localPathRoot(node.name)],
            })),
          },
          [storageClasses.shared]: { sharedFileSystemPath: sharedPathRoot() },
        },
      }),
      setup: '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
      teardown: '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
      'helperPod.yaml': JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'helper-pod' },
        spec: {
          priorityClassName: 'system-node-critical',
          tolerations: [{ operator: 'Exists' }],
          containers: [
            { name: 'helper-pod', image: reference(toolboxImage), imagePullPolicy: 'IfNotPresent' },
          ],
        },
      }),
    },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta('local-path-provisioner'),
    spec: {
      replicas: 1,
      selector: { matchLabels: { 'app.kubernetes.io/name': 'local-path-provisioner' } },
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': 'local-path-provisioner' } },
        spec: {
          serviceAccountName: 'local-path-provisioner',
          priorityClassName: 'system-node-critical',
          containers: [
            {
              name: 'local-path-provisioner',
              image: reference(localPathImage),
              args: [
                'start',
                '--config=/etc/config/config.json',
                '--service-account-name=local-path-provisioner',
                '--provisioner-name=rancher.io/local-path',
                `--helper-image=${reference(toolboxImage)}`,
                '--configmap-name=local-path-config',
              ],
              env: [
                {
                  name: 'POD_NAMESPACE',
                  valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
                },
              ],
              resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
              volumeMounts: [{ name: 'config', mountPath: '/etc/config', readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: 'local-path-config' } }],
        },
      },
    },
  },
  {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: {
      name: storageClasses.local,
      annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
    },
    provisioner: 'rancher.io/local-path',
    // As k3s: the volume is made on the node the pod is scheduled to.
    volumeBindingMode: 'WaitForFirstConsumer',
    reclaimPolicy: 'Delete',
  },
  {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: storageClasses.shared },
    provisioner: 'rancher.io/local-path',
    volumeBindingMode: 'Immediate',
    // Like the chart's NFS volumes: deleting the claim keeps the data.
    reclaimPolicy: 'Retain',
  },
];

/** Traefik's CRDs and its ClusterRole from the Traefik module, bound to kube-system/traefik. */
const traefikUpstream = (): Manifest[] => {
  const documents = [traefikFiles.crds(), traefikFiles.rbac()].flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8'))
      .map((document) => document.toJSON() as Manifest | null)
      .filter((document): document is Manifest => Boolean(document)),
  );
  for (const document of documents) {
    if (document.kind === 'ClusterRoleBinding') {
      document.subjects = [{ kind: 'ServiceAccount', name: 'traefik', namespace: system }];
    }
  }
  return documents;
};

export const edgePorts = { web: 80, websecure: 443 } as const;

/**
 * Traefik's latency buckets as ansible's k3s_server role sets them on a real cluster (its
 * defaults are the one list; docs/install.md and chart/README.md repeat it, a test compares).
 */
const traefikLatencyBuckets = () => roleDefault('k3s_server', 'k3s_server_traefik_latency_buckets');

const traefikManifests = (): Manifest[] => [
  ...traefikUpstream(),
  serviceAccount('traefik'),
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'IngressClass',
    metadata: {
      name: 'traefik',
      annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' },
    },
    spec: { controller: 'traefik.io/ingress-controller' },
  },
  {
    apiVersion: 'apps/v1',
    // Every node is an edge, as k3s's service load balancer exposes 80 and 443 on every node.
    kind: 'DaemonSet',
    metadata: meta('traefik'),
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'traefik' } },
      template: {
        metadata: {
          labels: {
            'app.kubernetes.io/name': 'traefik',
            'app.kubernetes.io/instance': 'traefik-kube-system',
          },
        },
        spec: {
          serviceAccountName: 'traefik',
          priorityClassName: 'system-cluster-critical',
          terminationGracePeriodSeconds: 10,
          containers: [
            {
              name: 'traefik',
              image: reference(traefikImage),
              args: [
                '--entryPoints.web.address=:8000/tcp',
                '--entryPoints.websecure.address=:8443/tcp',
                '--entryPoints.websecure.http.tls=true',
                '--entryPoints.metrics.address=:9100/tcp',
                '--entryPoints.traefik.address=:9000/tcp',
                '--ping=true',
                '--metrics.prometheus=true',
                '--metrics.prometheus.entrypoint=metrics',
                `--metrics.prometheus.buckets=${traefikLatencyBuckets()}`,
                '--providers.kubernetescrd',
                '--providers.kubernetescrd.allowCrossNamespace=true',
                '--providers.kubernetesingress',
                '--global.checkNewVersion=false',
                '--global.sendAnonymousUsage=false',
                '--log.level=INFO',
              ],
              ports: [
                { name: 'web', containerPort: 8000, hostPort: edgePorts.web, protocol: 'TCP' },
                {
                  name: 'websecure',
                  containerPort: 8443,
                  hostPort: edgePorts.websecure,
                  protocol: 'TCP',
                },
                { name: 'metrics', containerPort: 9100, protocol: 'TCP' },
                { name: 'traefik', containerPort: 9000, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ping', port: 9000 }, periodSeconds: 2 },
              livenessProbe: { httpGet: { path: '/ping', port: 9000 }, periodSeconds: 10 },
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                runAsUser: 65532,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: {} }],
        },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('traefik'),
    spec: {
      selector: { 'app.kubernetes.io/name': 'traefik' },
      ports: [
        { name: 'web', port: 80, targetPort: 'web' },
        { name: 'websecure', port: 443, targetPort: 'websecure' },
      ],
    },
  },
];

const kubectlApply = (kubectl: string, manifests: Manifest[], what: string) =>
  run(
    kubectl,
    ['apply', '--server-side', '--force-conflicts', '--field-manager=secretid-e2e', '-f', '-'],
    {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }),
      env: { ...process.env, KUBECONFIG: paths.kubeconfig },
      what: `kubectl apply of ${what}`,
    },
  );

const rolledOut = (kubectl: string, kind: string, name: string) =>
  run(kubectl, ['rollout', 'status', '-n', system, `${kind}/${name}`, '--timeout=120s'], {
    env: { ...process.env, KUBECONFIG: paths.kubeconfig },
    what: `rollout of ${kind}/${name}`,
    fix: `kubectl -n ${system} describe ${kind} ${name}; logs in the nodes' pod-logs folders`,
  });

export const addons = (kubectl: () => string): Action => ({
  name: 'addons',
  description:
    'apply CoreDNS, local-path-provisioner (default storage class) and Traefik (the edge)',
  up: async () => {
    kubectlApply(kubectl(), coredns(), 'CoreDNS');
    kubectlApply(kubectl(), localPath(), 'local-path-provisioner');
    const crds = traefikUpstream().filter(
      (document) => document.kind === 'CustomResourceDefinition',
    );
    kubectlApply(kubectl(), crds, "Traefik's CRDs");
    await waitUntil(
      "Traefik's CRDs to be Established",
      () =>
        run(
          kubectl(),
          [
            'wait',
            '--for=condition=Established',
            '--timeout=30s',
            ...crds.map((crd) => `crd/${(crd.metadata as { name: string }).name}`),
          ],
          {
            env: { ...process.env, KUBECONFIG: paths.kubeconfig },
            allowFailure: true,
          },
        ).status === 0,
      { timeoutMs: 60_000 },
    );
    kubectlApply(kubectl(), traefikManifests(), 'Traefik');
    rolledOut(kubectl(), 'deployment', 'coredns');
    rolledOut(kubectl(), 'deployment', 'local-path-provisioner');
    rolledOut(kubectl(), 'daemonset', 'traefik');
    if (nodes.length === 0) throw new HarnessError('no nodes');
  },
});
