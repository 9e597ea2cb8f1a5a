/**
 * knative/ for any release name: NOTES.txt of a release not named `secretid` (or with its own
 * credentials Secret) prints an overlay over knative/ (knative/release, a kustomize Component);
 * the overlay is written as a person would, by running NOTES' commands in a folder beside a
 * knative/, and kustomize's output must name exactly the objects the chart renders for that
 * release: its ConfigMaps, its credentials Secret, and the instance label its NetworkPolicies
 * and Prometheus select the functions by. A release named `secretid` gets the plain command.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { requireTool } from '../scripts/tools.ts';
import { parseManifests, renderChart, runHelm } from './helpers/helm.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
type KubeObject = any;

const namespace = 'field-ops';
const folders: string[] = [];
test.after.always(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** NOTES.txt of an install of the chart (helm's client-side dry run: no cluster). */
const notesOf = (release: string, set: string[] = [], inNamespace = namespace) => {
  const result = runHelm([
    'install',
    release,
    'chart',
    '-n',
    inNamespace,
    '--dry-run=client',
    ...set.flatMap((value) => ['--set', value]),
  ]);
  if (result.status !== 0) throw new Error(result.stderr);
  return result.stdout.slice(result.stdout.indexOf('NOTES:'));
};

/** Runs NOTES' overlay commands (mkdir ... EOF) in a folder holding a link to knative/. */
const overlayFromNotes = (notes: string) => {
  const start = notes.indexOf('mkdir -p knative-');
  const end = notes.indexOf('\nEOF\n', start);
  if (start === -1 || end === -1) throw new Error(`no overlay in NOTES.txt:\n${notes}`);
  const folder = mkdtempSync(join(tmpdir(), 'secretid-knative-release-'));
  folders.push(folder);
  symlinkSync(resolve('knative'), join(folder, 'knative'));
  const written = spawnSync('sh', ['-c', notes.slice(start, end + 5)], {
    cwd: folder,
    encoding: 'utf8',
  });
  if (written.status !== 0) throw new Error(written.stderr);
  const apply = notes.slice(end + 5).split('\n')[0] as string;
  const directory = /-k (\S+)/.exec(apply)?.[1] as string;
  const built = spawnSync(requireTool('kubectl'), ['kustomize', join(folder, directory)], {
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(built.stderr);
  return { apply, objects: parseManifests(built.stdout) as KubeObject[] };
};

const names = (objects: KubeObject[], kind: string) =>
  objects.filter((object) => object.kind === kind).map((object) => object.metadata.name);

for (const { release, set, what } of [
  { release: 'field', set: [], what: 'a release named otherwise' },
  {
    release: 'field',
    set: ['credentials.existingSecret=agency-credentials'],
    what: 'its own credentials Secret',
  },
]) {
  test(`${what}: NOTES.txt's overlay makes knative/ name the release's ConfigMaps, Secret and instance label`, (t) => {
    const { apply, objects } = overlayFromNotes(notesOf(release, set));
    t.regex(
      apply,
      new RegExp(`^kubectl apply --server-side .* -k knative-${release}/ -n ${namespace}$`),
    );
    const rendered = renderChart({
      release,
      namespace,
      set: Object.fromEntries(set.map((value) => value.split('=') as [string, string])),
    });
    const configMaps = names(rendered, 'ConfigMap');
    const secrets = [...names(rendered, 'Secret'), 'agency-credentials'];
    t.deepEqual(names(objects, 'ConfigMap'), [], 'the overlay settings are never applied');
    const services = objects.filter((object) => object.kind === 'Service');
    t.deepEqual(services.map((service) => service.metadata.name).sort(), ['api', 'web']);
    for (const service of services) {
      const template = service.spec.template;
      t.is(service.metadata.labels['app.kubernetes.io/instance'], release);
      t.is(template.metadata.labels['app.kubernetes.io/instance'], release);
      for (const source of template.spec.containers[0].envFrom)
        t.true(configMaps.includes(source.configMapRef.name), source.configMapRef.name);
      for (const variable of template.spec.containers[0].env ?? [])
        if (variable.valueFrom?.secretKeyRef)
          t.true(
            secrets.includes(variable.valueFrom.secretKeyRef.name),
            variable.valueFrom.secretKeyRef.name,
          );
    }
    const api = services.find((service) => service.metadata.name === 'api');
    const password = api.spec.template.spec.containers[0].env.find(
      (variable: KubeObject) => variable.name === 'PGPASSWORD',
    );
    t.is(
      password.valueFrom.secretKeyRef.name,
      set.length ? 'agency-credentials' : `${release}-secretid-credentials`,
    );
    // The functions' NetworkPolicy admits the pods of this release.
    const policy = rendered.find(
      (object: KubeObject) =>
        object.kind === 'NetworkPolicy' && object.metadata.name.endsWith('-functions'),
    ) as KubeObject;
    const instance = policy.spec.podSelector.matchExpressions.find(
      (expression: KubeObject) => expression.key === 'app.kubernetes.io/instance',
    );
    t.deepEqual(instance.values, [release]);
  });
}

test('a release named secretid gets the plain command: knative/ as it is', (t) => {
  const notes = notesOf('secretid');
  t.false(notes.includes('mkdir -p knative-'), notes);
  t.regex(
    notes,
    /kubectl apply --server-side --force-conflicts --field-manager=secretid-knative -k knative\/ -n field-ops/,
  );
});

test("knative/README.md's example is what NOTES.txt prints for release field in namespace ops", (t) => {
  const readme = readFileSync('knative/README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Another release name'));
  const example = /```sh\n([\s\S]*?)\n```/.exec(section)?.[1];
  const notes = notesOf('field', [], 'ops');
  const printed = notes.slice(
    notes.indexOf('mkdir -p'),
    notes.indexOf('\n', notes.indexOf('kubectl apply', notes.indexOf('mkdir -p'))),
  );
  t.is(example, printed);
});

test("NOTES.txt's field manager for knative/ is the one the Ansible deploy role applies with", (t) => {
  const defaults = parse(readFileSync('ansible/roles/secretid_deploy/defaults/main.yml', 'utf8'));
  const manager = defaults.secretid_deploy_knative_field_manager;
  t.regex(String(manager), /^[a-z][a-z0-9-]+$/);
  const notes = notesOf('secretid');
  const printed = [...notes.matchAll(/--field-manager=(\S+)/g)].map((match) => match[1]);
  t.true(printed.length > 0, notes);
  for (const name of printed)
    t.is(name, manager, 'a second apply under another manager would fight over the fields');
});
