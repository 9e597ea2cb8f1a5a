/**
 * The backup volume's access mode: PostgreSQL archives WAL into it while the backup jobs write
 * dumps and base backups, so either the volume is shared between nodes (NFS, or a class that
 * offers ReadWriteMany) or the jobs run on PostgreSQL's node. A default install must work on a
 * cluster whose only class is ReadWriteOnce (k3s's local-path): the cluster suite installs it
 * there (e2e/tests/chart.test.ts); this suite checks what the chart renders for each case.
 */
import test from 'ava';
import { type RenderedObject, renderChart, renderFailure } from './helpers/helm.ts';

const backupClaim = (objects: RenderedObject[]) =>
  objects.find(
    (object) => object.kind === 'PersistentVolumeClaim' && object.metadata.name.endsWith('-backup'),
  );
// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
const cronJobAffinities = (objects: RenderedObject[]): any[] =>
  objects
    .filter((object) => object.kind === 'CronJob')
    // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
    .map((object: any) => object.spec.jobTemplate.spec.template.spec.affinity);

test('on a storage class the backup claim is ReadWriteOnce and the backup jobs run beside PostgreSQL', (t) => {
  const objects = renderChart();
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
  const claim: any = backupClaim(objects);
  t.deepEqual(claim.spec.accessModes, ['ReadWriteOnce']);
  t.is(claim.spec.storageClassName, undefined, 'the cluster default class');
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
  const postgres: any = objects.find((object) => object.kind === 'StatefulSet');
  const affinities = cronJobAffinities(objects);
  t.is(affinities.length, 2, 'the dump and the base-backup CronJob');
  for (const affinity of affinities) {
    const [term] = affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    t.is(term.topologyKey, 'kubernetes.io/hostname');
    t.deepEqual(term.labelSelector.matchLabels, postgres.spec.selector.matchLabels);
  }
});

test('on NFS, or asked for ReadWriteMany, the backup volume is shared and the jobs go anywhere', (t) => {
  const nfs = renderChart({
    set: {
      'backup.persistence.nfs.enabled': true,
      'backup.persistence.nfs.server': 'nfs.example',
      'backup.persistence.nfs.path': '/srv/backup',
    },
  });
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
  const volume: any = nfs.find(
    (object) => object.kind === 'PersistentVolume' && object.metadata.name.endsWith('-backup'),
  );
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
  t.deepEqual((backupClaim(nfs) as any).spec.accessModes, ['ReadWriteMany']);
  t.deepEqual(volume.spec.accessModes, ['ReadWriteMany']);
  t.true(cronJobAffinities(nfs).every((affinity) => affinity === undefined));

  const shared = renderChart({
    set: {
      'backup.persistence.storageClass': 'cephfs',
      'backup.persistence.accessMode': 'ReadWriteMany',
    },
  });
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
  const claim: any = backupClaim(shared);
  t.deepEqual(claim.spec.accessModes, ['ReadWriteMany']);
  t.is(claim.spec.storageClassName, 'cephfs');
  t.true(cronJobAffinities(shared).every((affinity) => affinity === undefined));
});

test('an access mode the backup volume can never have fails at template time and says what to set', (t) => {
  const onePod = renderFailure({ set: { 'backup.persistence.accessMode': 'ReadWriteOncePod' } });
  t.not(onePod.status, 0);
  t.regex(onePod.stderr, /backup\.persistence\.accessMode=ReadWriteOncePod cannot work/);
  t.regex(onePod.stderr, /Set it to ReadWriteOnce .* or ReadWriteMany/);
  const unknown = renderFailure({ set: { 'backup.persistence.accessMode': 'ReadOnlyMany' } });
  t.not(unknown.status, 0);
  t.regex(unknown.stderr, /accessMode/);
});
