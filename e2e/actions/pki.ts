/**
 * The certificates and kubeconfigs a control plane needs, made with openssl for each new
 * cluster (they live in the state folder, so `down` forgets them): one CA, the API server's
 * serving certificate, client certificates for the admin, controller-manager, scheduler,
 * kube-proxy, the API server's calls to kubelets and each node's kubelet, a serving
 * certificate per kubelet, and the service-account signing key.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { run } from '../lib/run.ts';
import {
  apiServerUrl,
  apiServiceAddress,
  clusterDomain,
  clusterName,
  machineNetwork,
  nodes,
  paths,
} from '../lib/settings.ts';

export const pkiFile = (name: string) => join(paths.pki, name);

const openssl = (args: string[]) =>
  run('openssl', args, { cwd: paths.pki, what: `openssl ${args[0]}` });

/** Signs a certificate for `name` with the cluster CA (RSA 2048, 30 days). */
const sign = (name: string, subject: string, extensions: string[]) => {
  writeFileSync(pkiFile(`${name}.ext`), `${extensions.join('\n')}\n`);
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
  ]);
};

const clientCertificate = (name: string, commonName: string, organisation?: string) =>
  sign(name, `${organisation ? `/O=${organisation}` : ''}/CN=${commonName}`, [
    'extendedKeyUsage=clientAuth',
  ]);

const base64 = (file: string) => readFileSync(pkiFile(file)).toString('base64');

/** A kubeconfig for one client certificate, written as YAML (no kubectl needed). */
export const writeKubeconfig = (path: string, certificate: string, server = apiServerUrl) =>
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: ${clusterName}`,
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority-data: ${base64('ca.crt')}`,
      'users:',
      `- name: ${certificate}`,
      '  user:',
      `    client-certificate-data: ${base64(`${certificate}.crt`)}`,
      `    client-key-data: ${base64(`${certificate}.key`)}`,
      'contexts:',
      `- name: ${clusterName}`,
      '  context:',
      `    cluster: ${clusterName}`,
      `    user: ${certificate}`,
      `current-context: ${clusterName}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

export const kubeconfigFor = (component: string) => pkiFile(`${component}.kubeconfig`);

export const pki: Action = {
  name: 'pki',
  description: 'make a CA, the control plane certificates and kubeconfigs (openssl)',
  up: () => {
    if (existsSync(paths.kubeconfig)) {
      console.log(`      present in ${paths.pki}`);
      return;
    }
    mkdirSync(paths.pki, { recursive: true, mode: 0o700 });
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '30',
      '-subj',
      `/CN=${clusterName}-ca`,
    ]);
    const apiNames = [
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      `kubernetes.default.svc.${clusterDomain}`,
      'localhost',
    ];
    sign('apiserver', '/CN=kube-apiserver', [
      `subjectAltName=${[...apiNames.map((name) => `DNS:${name}`), 'IP:127.0.0.1', `IP:${apiServiceAddress}`, `IP:${machineNetwork.hostAddress}`].join(',')}`,
      'extendedKeyUsage=serverAuth',
    ]);
    clientCertificate('admin', 'admin', 'system:masters');
    clientCertificate('kube-controller-manager', 'system:kube-controller-manager');
    clientCertificate('kube-scheduler', 'system:kube-scheduler');
    clientCertificate('kube-proxy', 'system:kube-proxy');
    clientCertificate(
      'apiserver-kubelet-client',
      'kube-apiserver-kubelet-client',
      'system:masters',
    );
    for (const node of nodes) {
      clientCertificate(`kubelet-${node.name}`, `system:node:${node.name}`, 'system:nodes');
      sign(`kubelet-${node.name}-serving`, `/CN=${node.name}`, [
        `subjectAltName=DNS:${node.name},IP:${node.address}`,
        'extendedKeyUsage=serverAuth',
      ]);
      writeKubeconfig(kubeconfigFor(`kubelet-${node.name}`), `kubelet-${node.name}`);
    }
    openssl(['genrsa', '-out', 'service-account.key', '2048']);
    openssl(['rsa', '-in', 'service-account.key', '-pubout', '-out', 'service-account.pub']);
    for (const component of ['kube-controller-manager', 'kube-scheduler', 'kube-proxy']) {
      writeKubeconfig(kubeconfigFor(component), component);
    }
    writeKubeconfig(paths.kubeconfig, 'admin');
    console.log(`      CA and certificates in ${paths.pki}; admin kubeconfig ${paths.kubeconfig}`);
  },
};
