/**
 * The deploy half of ansible/: the second inventory (an existing cluster, the cluster roles
 * skipped), the deploy's preflight run for real from this machine, the values the roles share
 * evaluated by Ansible itself, and the deploy's helm and kustomize inputs fed to the real chart and
 * the real kubectl. No cluster is reachable here: nothing after the preflight runs against one.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test from 'ava';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { requireTool } from '../scripts/tools.ts';
import {
  adHoc,
  ansibleDirectory,
  ansibleEnvironment,
  evaluate,
  runTool,
} from './helpers/ansible.ts';
import { freePort } from './helpers/free-port.ts';
import {
  describe,
  parseManifests,
  type RenderedObject,
  renderChart,
  runHelm,
} from './helpers/helm.ts';
import { traefikLatencyBuckets } from './helpers/traefik-buckets.ts';

const vagrantInventory = 'inventory/vagrant';
const existingInventory = 'inventory/existing';
const roleDefaults = (role: string) =>
  join(ansibleDirectory, 'roles', role, 'defaults', 'main.yml');
const readYaml = (path: string) => parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const groupVars = readYaml(join(ansibleDirectory, 'group_vars', 'all.yml'));
const chartValues = readYaml('chart/values.yaml') as { domain: string; postgres: { uid: number } };
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const inventoryHosts = JSON.parse(
  runTool('python3', ['ansible/inventory/vagrant/hosts.py', '--list'], 'python3-yaml').stdout,
) as { _meta: { hostvars: Record<string, { ansible_host: string }> } } & Record<
  string,
  { hosts: string[] }
>;
const addressOf = (group: string) => {
  const host = inventoryHosts[group]?.hosts[0] ?? '';
  return inventoryHosts._meta.hostvars[host]?.ansible_host ?? '';
};

/** ansible-playbook site.yml on an inventory, from ansible/, with the given environment. */
const playbook = (inventory: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  runTool('ansible-playbook', ['-i', inventory, 'site.yml', ...args], 'ansible', {
    cwd: ansibleDirectory,
    env: ansibleEnvironment(false, env),
  });

/** Every SECRETID_* and KUBECONFIG variable removed, so only what a test sets is seen. */
const withoutDeploySettings = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('SECRETID_') && name !== 'KUBECONFIG',
    ),
  );

test('the existing-cluster inventory passes the syntax check', (t) => {
  const result = playbook(existingInventory, ['--syntax-check']);
  t.is(result.status, 0, result.output);
});

test('the existing-cluster inventory skips every cluster play and deploys from this machine', (t) => {
  const result = playbook(existingInventory, ['--list-hosts']);
  t.is(result.status, 0, result.output);
  const plays = [
    ...result.stdout.matchAll(
      /play #\d+ \(([^)]+)\): (.+?)\tTAGS.*\n.*\n\s+hosts \((\d+)\):\n((?:\s{6}\S+\n?)*)/g,
    ),
  ].map((match) => ({
    name: match[2],
    count: Number(match[3]),
    hosts: (match[4] ?? '').trim().split(/\s+/).filter(Boolean),
  }));
  t.is(plays.length, 6, result.stdout);
  const deploy = plays.pop();
  t.regex(deploy?.name ?? '', /deploy secretid/);
  t.deepEqual(deploy?.hosts, ['localhost']);
  for (const play of plays) t.is(play.count, 0, `${play.name} is skipped`);
  // The Vagrant inventory runs every play, the deploy on the first control-plane machine.
  const full = playbook(vagrantInventory, ['--list-hosts']);
  t.is(full.status, 0, full.output);
  t.notRegex(full.stdout, /hosts \(0\)/);
  t.regex(full.stdout, /play #6 \(deployer\).*\n.*\n\s+hosts \(1\):\n\s+control-plane-1/);
});

test('the deploy to an existing cluster stops before any change when a setting is missing', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'deploy-settings-'));
  try {
    const result = playbook(existingInventory, [], {
      ...withoutDeploySettings(),
      SECRETID_WORK_DIRECTORY: join(work, 'work'),
    });
    t.not(result.status, 0, result.output);
    for (const [variable, environment] of [
      ['secretid_deploy_registry', 'SECRETID_REGISTRY'],
      ['secretid_deploy_nfs_server', 'SECRETID_NFS_SERVER'],
      ['secretid_deploy_smoke_address', 'SECRETID_EDGE_ADDRESS'],
    ])
      t.regex(
        result.output,
        new RegExp(`${variable} is empty: .*inventory/existing reads it from ${environment}`),
      );
    // The NFS paths have defaults: they are not reported.
    t.notRegex(result.output, /secretid_deploy_nfs_data_path is empty/);
    t.false(existsSync(join(work, 'work')), 'nothing was written');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('the deploy to an existing cluster stops before any change when the cluster does not answer', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'deploy-cluster-'));
  try {
    // A kubeconfig naming a loopback port nothing listens on.
    const port = await freePort();
    const kubeconfig = join(work, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'gone', cluster: { server: `https://127.0.0.1:${port}` } }],
        users: [{ name: 'gone', user: { token: 'not-a-secret' } }],
        contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'gone' } }],
        'current-context': 'gone',
      }),
    );
    const result = playbook(existingInventory, [], {
      ...withoutDeploySettings(),
      KUBECONFIG: kubeconfig,
      SECRETID_KUBECTL: requireTool('kubectl'),
      SECRETID_REGISTRY: '127.0.0.1:5000',
      SECRETID_NFS_SERVER: '127.0.0.1',
      SECRETID_EDGE_ADDRESS: '127.0.0.1',
      SECRETID_WORK_DIRECTORY: join(work, 'work'),
    });
    t.not(result.status, 0, result.output);
    t.regex(result.output, /Refuse empty deploy settings[\s\S]*ok: \[localhost\]/);
    t.regex(result.output, /Refuse to go on without the pinned helm\] \*+\nok: \[localhost\]/);
    t.regex(
      result.output,
      new RegExp(
        `get --raw /readyz\` with KUBECONFIG=${kubeconfig} failed \\(.*127\\.0\\.0\\.1:${port}.*refused.*\\): point KUBECONFIG at the cluster`,
      ),
    );
    t.regex(result.output, /failed=1/);
    t.false(existsSync(join(work, 'work')), 'nothing was written');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** Pairs of variables of different roles that must hold the same value on every host. */
const sharedPairs: [string, string][] = [
  ['nfs_server_postgres_data_directory', 'secretid_deploy_nfs_data_path'],
  ['nfs_server_postgres_backup_directory', 'secretid_deploy_nfs_backup_path'],
  ['k3s_server_version', 'k3s_agent_version'],
  ['k3s_server_api_port', 'k3s_agent_server_port'],
  ['knative_kubectl', 'secretid_deploy_kubectl'],
  ['knative_kubeconfig', 'secretid_deploy_kubeconfig'],
];

test('the values several roles share are equal on every host and match the chart', (t) => {
  const tied = Object.keys(groupVars).filter(
    (name) => !name.startsWith('secretid_') || name.startsWith('secretid_deploy_'),
  );
  const values = evaluate(vagrantInventory, 'all', [
    ...tied,
    'secretid_registry',
    'secretid_registry_port',
  ]);
  t.deepEqual(Object.keys(values).sort(), Object.keys(inventoryHosts._meta.hostvars).sort());
  for (const [host, hostValues] of Object.entries(values)) {
    for (const [left, right] of sharedPairs)
      t.is(hostValues[left], hostValues[right], `${host}: ${left} = ${right}`);
    // The exports belong to the uid PostgreSQL runs as in the chart.
    t.is(Number(hostValues.nfs_server_owner_uid), chartValues.postgres.uid, host);
    t.is(Number(hostValues.nfs_server_owner_gid), chartValues.postgres.uid, host);
    // The deploy pushes to the registry the registry role runs: its host's address and port.
    t.is(hostValues.registry_host, inventoryHosts.control_plane?.hosts[0], host);
    t.is(
      hostValues.secretid_deploy_registry,
      `${addressOf('control_plane')}:${hostValues.registry_port}`,
    );
  }
  // Each role alone (its defaults only) uses the same values as the tied ones: a role applied
  // on its own exports, pulls and deploys the same way.
  for (const role of [
    'nfs_server',
    'k3s_server',
    'k3s_agent',
    'registry',
    'knative',
    'secretid_deploy',
  ]) {
    const own = Object.keys(readYaml(roleDefaults(role))).filter((name) => name in groupVars);
    t.true(own.length > 0, `${role} shares a value`);
    const alone = evaluate(vagrantInventory, 'deployer', own, [roleDefaults(role)]);
    // Templated values come back as strings (999 vs "999"): compare their text.
    for (const [host, hostValues] of Object.entries(alone))
      for (const name of own)
        t.is(String(hostValues[name]), String(values[host]?.[name]), `${role} alone: ${name}`);
  }
});

test("the cluster's k3s is the Kubernetes minor of the kubectl the tests run", (t) => {
  const k3s = String(groupVars.secretid_k3s_version);
  const client = JSON.parse(
    execFileSync(requireTool('kubectl'), ['version', '--client', '-o', 'json'], {
      encoding: 'utf8',
    }),
  ) as { clientVersion: { major: string; minor: string } };
  t.regex(
    k3s,
    new RegExp(`^v${client.clientVersion.major}\\.${client.clientVersion.minor}\\.\\d+\\+k3s\\d+$`),
  );
});

/** The deploy's helm argv (tasks/chart.yml) with every {{ variable }} replaced by `values`. */
const deployHelmArguments = (values: Record<string, unknown>) => {
  const tasks = parse(
    readFileSync(join(ansibleDirectory, 'roles/secretid_deploy/tasks/chart.yml'), 'utf8'),
  ) as { 'ansible.builtin.command': { argv: string[] } }[];
  const argv = tasks[0]?.['ansible.builtin.command'].argv ?? [];
  return argv.map((argument) =>
    argument.replace(/\{\{ (\w+) \}\}/g, (_, name: string) => {
      if (!(name in values)) throw new Error(`chart.yml uses ${name}, not evaluated by the test`);
      return String(values[name]);
    }),
  );
};

test("the deploy's helm arguments install the real chart with the inventory's exports and registry", (t) => {
  const names = [
    'secretid_deploy_helm_binary',
    'secretid_deploy_release',
    'secretid_deploy_namespace',
    'secretid_deploy_domain',
    'secretid_deploy_nfs_server',
    'secretid_deploy_nfs_data_path',
    'secretid_deploy_nfs_backup_path',
    'secretid_deploy_registry',
    'secretid_deploy_version',
    'secretid_deploy_tls_secret',
    'secretid_deploy_seed_image',
    'secretid_deploy_images',
  ];
  // Role defaults first, then group_vars on top: what the deploy play sees.
  const alone = evaluate(vagrantInventory, 'deployer', names, [roleDefaults('secretid_deploy')]);
  const host = Object.keys(alone)[0] ?? '';
  const tiedNames = names.filter((name) => name in groupVars);
  const tied = evaluate(vagrantInventory, 'deployer', tiedNames)[host] ?? {};
  const values = { ...alone[host], ...tied } as Record<string, string>;
  t.is(values.secretid_deploy_domain, chartValues.domain);
  // The images the deploy builds carry the names the chart and knative/ use.
  const images = Object.fromEntries(
    (values.secretid_deploy_images as unknown as { target: string; name: string }[]).map(
      (image) => [image.target, image.name],
    ),
  );
  const kustomization = readYaml('knative/kustomization.yaml') as { images: { name: string }[] };
  t.deepEqual(
    [images.api, images.web],
    kustomization.images.map((image) => image.name),
  );
  t.is(
    images.seed,
    (chartValues as unknown as { seed: { image: { repository: string } } }).seed.image.repository,
  );
  t.is(values.secretid_deploy_version, version);

  const argv = deployHelmArguments(values);
  t.deepEqual(argv.slice(0, 5), [
    values.secretid_deploy_helm_binary,
    'upgrade',
    '--install',
    values.secretid_deploy_release,
    './chart',
  ]);
  // The same arguments, rendered instead of installed (no cluster here): --wait, --timeout and
  // --create-namespace only matter to a cluster.
  const options = argv
    .slice(5)
    .filter((argument) => !/^--(wait|timeout|create-namespace)/.test(argument));
  const rendered = runHelm([
    'template',
    values.secretid_deploy_release ?? '',
    resolve('chart'),
    ...options,
  ]);
  t.is(rendered.status, 0, rendered.stderr);
  const objects = parseManifests(rendered.stdout);
  const named = (kind: string, suffix: string) =>
    objects.find((object) => object.kind === kind && object.metadata.name.endsWith(suffix)) as
      | (RenderedObject & { spec: Record<string, unknown> })
      | undefined;
  for (const [suffix, path] of [
    ['-postgres-data', values.secretid_deploy_nfs_data_path],
    ['-backup', values.secretid_deploy_nfs_backup_path],
  ]) {
    const volume = objects.find(
      (object) => object.kind === 'PersistentVolume' && object.metadata.name.endsWith(suffix ?? ''),
    ) as (RenderedObject & { spec: { nfs: { server: string; path: string } } }) | undefined;
    t.truthy(
      volume,
      `a PersistentVolume named *${suffix}: ${objects.filter((o) => o.kind === 'PersistentVolume').map(describe)}`,
    );
    t.deepEqual(volume?.spec.nfs, { server: addressOf('nfs_servers'), path });
  }
  for (const object of objects)
    t.is(
      object.metadata.namespace ?? values.secretid_deploy_namespace,
      values.secretid_deploy_namespace,
    );
  const seed = JSON.stringify(named('Job', '-seed'));
  t.true(
    seed.includes(`"image":"${values.secretid_deploy_registry}/secretid-seed:${version}"`),
    seed.slice(0, 400),
  );
  // The smoke check reads the CA from the Secret the chart generates.
  const tls = named('Secret', values.secretid_deploy_tls_secret ?? '');
  t.is(tls?.metadata.name, values.secretid_deploy_tls_secret);
  t.truthy((tls as { data?: Record<string, string> } | undefined)?.data?.['ca.crt']);
  t.true(
    JSON.stringify(objects).includes(`api.${values.secretid_deploy_domain}`),
    'the edge routes api.<domain>',
  );
});

/** Renders one role template for every host of `pattern` with Ansible; returns host -> YAML. */
const renderTemplate = (
  role: string,
  template: string,
  pattern: string,
  extra: Record<string, unknown> = {},
) => {
  const work = mkdtempSync(join(tmpdir(), `render-${role}-`));
  try {
    const result = adHoc(
      vagrantInventory,
      pattern,
      'ansible.builtin.template',
      `src=roles/${role}/templates/${template} dest=${work}/{{ inventory_hostname }} mode=0600`,
      [`@${roleDefaults(role)}`, JSON.stringify(extra)],
    );
    if (result.status !== 0)
      throw new Error(`rendering ${role}/${template} failed: ${result.output}`);
    // One file per host the pattern matched, named after it.
    return Object.fromEntries(
      readdirSync(work).map((host) => [
        host,
        parse(readFileSync(join(work, host), 'utf8')) as Record<string, unknown>,
      ]),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};

test('the Knative overlay the deploy writes points the Services at the registry and changes nothing else', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'deploy-overlay-'));
  try {
    const registry = '127.0.0.1:5000';
    // The template as the role renders it on the deploy host, written where the role writes it.
    const [overlay] = Object.values(
      renderTemplate('secretid_deploy', 'kustomization.yaml.j2', 'deployer', {
        secretid_deploy_source_directory: resolve('.'),
        secretid_deploy_work_directory: work,
        secretid_deploy_registry: registry,
      }),
    );
    mkdirSync(join(work, 'knative-overlay'));
    writeFileSync(join(work, 'knative-overlay', 'kustomization.yaml'), stringify(overlay));
    const build = (directory: string) =>
      parseAllDocuments(
        execFileSync(requireTool('kubectl'), ['kustomize', directory], { encoding: 'utf8' }),
      ).map((document) => document.toJS() as Record<string, unknown>);
    const base = build('knative');
    const withRegistry = build(join(work, 'knative-overlay'));
    t.is(withRegistry.length, base.length);
    const images = JSON.stringify(withRegistry).match(/"image":"[^"]+"/g);
    t.deepEqual(images?.sort(), [
      `"image":"${registry}/secretid-api:${version}"`,
      `"image":"${registry}/secretid-web:${version}"`,
    ]);
    // Apart from the image names the Services are the repository's.
    t.is(JSON.stringify(withRegistry).replaceAll(`${registry}/`, ''), JSON.stringify(base));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("for a release not named secretid the overlay the deploy writes names that release's objects, as NOTES.txt does", (t) => {
  const work = mkdtempSync(join(tmpdir(), 'deploy-overlay-'));
  try {
    const [overlay] = Object.values(
      renderTemplate('secretid_deploy', 'kustomization.yaml.j2', 'deployer', {
        secretid_deploy_source_directory: resolve('.'),
        secretid_deploy_work_directory: work,
        secretid_deploy_registry: '127.0.0.1:5000',
        secretid_deploy_release: 'field',
      }),
    );
    mkdirSync(join(work, 'knative-overlay'));
    writeFileSync(join(work, 'knative-overlay', 'kustomization.yaml'), stringify(overlay));
    const built = JSON.stringify(
      parseAllDocuments(
        execFileSync(requireTool('kubectl'), ['kustomize', join(work, 'knative-overlay')], {
          encoding: 'utf8',
        }),
      ).map((document) => document.toJS()),
    );
    const rendered = renderChart({ release: 'field', namespace: 'ops' });
    const named = (kind: string) =>
      rendered.filter((object) => object.kind === kind).map((object) => object.metadata.name);
    for (const name of ['field-secretid-api-env', 'field-secretid-web-env'])
      t.true(named('ConfigMap').includes(name) && built.includes(`"name":"${name}"`), name);
    t.true(named('Secret').includes('field-secretid-credentials'));
    t.true(built.includes('"name":"field-secretid-credentials"'));
    t.false(built.includes('"secretid-api-env"') || built.includes('"secretid-credentials"'));
    t.true(built.includes('"app.kubernetes.io/instance":"field"'));
    t.false(built.includes('"kind":"ConfigMap"'), 'the release settings are not applied');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("Knative skips tag resolution for the deploy's registry, beside its own defaults, in config-deployment alone", (t) => {
  const registry = 'registry.secretid.internal:5000';
  const [config] = Object.values(
    renderTemplate('secretid_deploy', 'config-deployment.yaml.j2', 'deployer', {
      secretid_deploy_registry: registry,
    }),
  ) as Array<{
    kind: string;
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
  }>;
  t.is(config?.kind, 'ConfigMap');
  t.deepEqual(config?.metadata, { name: 'config-deployment', namespace: 'knative-serving' });
  t.deepEqual(Object.keys(config?.data ?? {}), ['registries-skipping-tag-resolving']);
  t.deepEqual(config?.data['registries-skipping-tag-resolving']?.split(','), [
    'kind.local',
    'ko.local',
    'dev.local',
    registry,
  ]);
});

test("the k3s and registry templates render with each node's inventory address and the shared registry", (t) => {
  const token = 'rendered-in-a-test';
  const servers = renderTemplate('k3s_server', 'config.yaml.j2', 'control_plane', {
    k3s_server_token: token,
  });
  for (const [host, config] of Object.entries(servers)) {
    const address = inventoryHosts._meta.hostvars[host]?.ansible_host;
    t.like(config, {
      'node-name': host,
      'node-ip': address,
      'advertise-address': address,
      'https-listen-port': groupVars.secretid_k3s_api_port,
      token,
    });
    t.deepEqual(config['tls-san'], [address]);
  }
  const agents = renderTemplate('k3s_agent', 'config.yaml.j2', 'workers', {
    k3s_agent_token: token,
  });
  t.deepEqual(Object.keys(agents).sort(), [...(inventoryHosts.workers?.hosts ?? [])].sort());
  for (const [host, config] of Object.entries(agents))
    t.like(config, {
      server: `https://${addressOf('control_plane')}:${groupVars.secretid_k3s_api_port}`,
      'node-name': host,
      'node-ip': inventoryHosts._meta.hostvars[host]?.ansible_host,
      token,
    });
  const traefik = renderTemplate('k3s_server', 'traefik-config.yaml.j2', 'control_plane');
  for (const config of Object.values(traefik))
    t.like(config, {
      kind: 'HelmChartConfig',
      metadata: { name: 'traefik', namespace: 'kube-system' },
    });
  for (const config of Object.values(traefik)) {
    const values = parse(String((config.spec as { valuesContent: string }).valuesContent)) as {
      providers: { kubernetesCRD: { allowCrossNamespace: boolean } };
      metrics?: { prometheus?: { buckets?: string } };
    };
    t.true(values.providers.kubernetesCRD.allowCrossNamespace);
    // Traefik's latency buckets hold the chart's latency SLO threshold (test/traefik-buckets.test.ts).
    t.is(values.metrics?.prometheus?.buckets, traefikLatencyBuckets());
  }
  // Every node pulls from exactly the registry the deploy pushes to, over plain HTTP.
  const registry = evaluate(vagrantInventory, 'deployer', ['secretid_deploy_registry']);
  const pushedTo = Object.values(registry)[0]?.secretid_deploy_registry;
  const mirrors = renderTemplate('registry', 'registries.yaml.j2', 'control_plane:workers');
  t.deepEqual(
    Object.keys(mirrors).sort(),
    [
      ...(inventoryHosts.control_plane?.hosts ?? []),
      ...(inventoryHosts.workers?.hosts ?? []),
    ].sort(),
  );
  for (const config of Object.values(mirrors))
    t.deepEqual(config, { mirrors: { [String(pushedTo)]: { endpoint: [`http://${pushedTo}`] } } });
});
