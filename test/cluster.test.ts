/**
 * The first slice of the reproducible cluster (vagrant/ and ansible/): yamllint, ansible-lint
 * (production profile), the playbook's syntax check, `vagrant validate`, the inventory derived
 * from vagrant/settings.yml, and the nfs_server role run for real in check mode against this
 * machine on a throwaway inventory (no change is made: check mode, paths in a temporary folder).
 * A missing tool fails with the Debian package to install.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { runTool as run } from './helpers/ansible.ts';

interface Role {
  count: number;
  name_prefix: string;
  host_numbers: number[];
}
interface Settings {
  network: { prefix: string };
  roles: Record<string, Role>;
}

const settings = parse(readFileSync('vagrant/settings.yml', 'utf8')) as Settings;

test('yamllint passes on vagrant/ and ansible/', (t) => {
  const result = run(
    'yamllint',
    ['-c', 'ansible/.yamllint', '--strict', 'vagrant', 'ansible'],
    'yamllint',
  );
  t.is(result.status, 0, result.output);
});

test('ansible-lint passes with the production profile', (t) => {
  const result = run('ansible-lint', ['--nocolor'], 'ansible-lint', { cwd: 'ansible' });
  t.is(result.status, 0, result.output);
  t.regex(result.output, /production/);
});

test('the playbook passes ansible-playbook --syntax-check on the Vagrant inventory', (t) => {
  const result = run(
    'ansible-playbook',
    ['-i', 'inventory/vagrant', 'site.yml', '--syntax-check'],
    'ansible',
    { cwd: 'ansible' },
  );
  t.is(result.status, 0, result.output);
});

test('the Vagrantfile passes vagrant validate', (t) => {
  const result = run('vagrant', ['validate', '--ignore-provider'], 'vagrant', {
    env: { ...process.env, VAGRANT_CWD: 'vagrant' },
  });
  t.is(result.status, 0, result.output);
  t.regex(result.output, /validated successfully/);
});

test('the inventory script lists exactly the machines and addresses of vagrant/settings.yml', (t) => {
  const result = run('python3', ['ansible/inventory/vagrant/hosts.py', '--list'], 'python3-yaml');
  t.is(result.status, 0, result.output);
  const inventory = JSON.parse(result.stdout);
  const expectedHosts: Record<string, string> = {};
  for (const [group, role] of Object.entries(settings.roles)) {
    const names = Array.from(
      { length: role.count },
      (_, index) => `${role.name_prefix}-${index + 1}`,
    );
    t.deepEqual(inventory[group].hosts, names, group);
    names.forEach((name, index) => {
      expectedHosts[name] = `${settings.network.prefix}.${role.host_numbers[index]}`;
    });
  }
  t.deepEqual(Object.keys(settings.roles).sort(), ['control_plane', 'nfs_servers', 'workers']);
  t.is(settings.roles.control_plane?.count, 1);
  // The deploy runs on the first control-plane machine.
  t.deepEqual(inventory.deployer.hosts, [`${settings.roles.control_plane?.name_prefix}-1`]);
  const actualHosts = Object.fromEntries(
    Object.entries(inventory._meta.hostvars as Record<string, { ansible_host: string }>).map(
      ([name, variables]) => [name, variables.ansible_host],
    ),
  );
  t.deepEqual(actualHosts, expectedHosts);
  t.is(
    new Set(Object.values(actualHosts)).size,
    Object.keys(actualHosts).length,
    'addresses are unique',
  );
});

test('the Vagrantfile holds no IP address of its own', (t) => {
  const vagrantfile = readFileSync('vagrant/Vagrantfile', 'utf8');
  t.notRegex(vagrantfile, /\b\d{1,3}\.\d{1,3}\.\d{1,3}(\.\d{1,3})?\b/);
  t.regex(vagrantfile, /settings\.yml/);
  t.regex(vagrantfile, /inventory_path/);
});

test('the nfs_server role runs in check mode and would write the expected exports', (t) => {
  const installed = run('dpkg', ['--status', 'nfs-kernel-server'], 'dpkg');
  if (!installed.stdout.includes('Status: install ok installed'))
    throw new Error(
      'the check-mode run needs the NFS service present: install it (apt-get install nfs-kernel-server)',
    );
  const scratch = mkdtempSync(join(tmpdir(), 'nfs-server-check-'));
  try {
    const inventory = join(scratch, 'hosts.ini');
    writeFileSync(
      inventory,
      '[nfs_servers]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n' +
        '[workers]\nworker-1 ansible_host=192.0.2.21\n[control_plane]\ncontrol-plane-1 ansible_host=192.0.2.10\n',
    );
    const exportsFile = join(scratch, 'exports.d', 'secretid.exports');
    const result = run(
      'ansible-playbook',
      [
        '-i',
        inventory,
        'site.yml',
        // Only the NFS play: the other hosts of this inventory are never contacted.
        '--limit',
        'nfs_servers',
        '--check',
        '--diff',
        '-e',
        `secretid_nfs_export_root=${join(scratch, 'srv')}`,
        '-e',
        `nfs_server_exports_file=${exportsFile}`,
      ],
      'ansible',
      {
        cwd: 'ansible',
        env: {
          ...process.env,
          ANSIBLE_LOCAL_TEMP: join(scratch, 'tmp'),
          ANSIBLE_REMOTE_TEMP: join(scratch, 'tmp'),
          ANSIBLE_NOCOLOR: '1',
        },
      },
    );
    t.is(result.status, 0, result.output);
    t.regex(result.output, /failed=0/);
    const options = '\\(rw,sync,no_subtree_check,root_squash\\)';
    for (const directory of ['postgres-data', 'postgres-backup'])
      t.regex(
        result.output,
        new RegExp(
          `${join(scratch, 'srv', directory)} 192\\.0\\.2\\.10${options} 192\\.0\\.2\\.21${options}`,
        ),
      );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('every role has a README naming each of its default variables', (t) => {
  const roles = readdirSync('ansible/roles');
  t.true(roles.length >= 6, roles.join(', '));
  for (const role of roles) {
    const defaults = parse(
      readFileSync(`ansible/roles/${role}/defaults/main.yml`, 'utf8'),
    ) as Record<string, unknown>;
    const readme = readFileSync(`ansible/roles/${role}/README.md`, 'utf8');
    for (const name of Object.keys(defaults)) {
      t.true(name.startsWith(`${role}_`), `${role}: ${name} carries the role's prefix`);
      t.true(readme.includes(`\`${name}\``), `${role}/README.md documents ${name}`);
    }
  }
});
