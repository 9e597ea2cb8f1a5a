/**
 * Running the cluster tools (ansible, ansible-playbook, yamllint, vagrant, ...) from tests, and
 * asking Ansible itself what a variable evaluates to for each host of an inventory.
 */
import { type SpawnOptions, type SpawnSyncOptions, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

/** The ansible/ folder: site.yml, its group_vars, the roles and the inventories. */
export const ansibleDirectory = resolve('ansible');

export interface ToolResult {
  status: number | null;
  /** stdout and stderr together, for assertion messages. */
  output: string;
  stdout: string;
}

/** Runs a tool; a missing tool throws naming the Debian package that provides it. */
export function runTool(
  command: string,
  args: string[],
  debianPackage: string,
  options: SpawnSyncOptions = {},
): ToolResult {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 300_000, ...options });
  if (result.error)
    throw new Error(
      `${command} could not run (${result.error.message}): install it (apt-get install ${debianPackage})`,
    );
  const stdout = String(result.stdout);
  return { status: result.status, output: `${stdout}${String(result.stderr)}`, stdout };
}

/**
 * runTool without blocking: for runs that reach a server living in the test's own process.
 */
export function runToolAsync(
  command: string,
  args: string[],
  debianPackage: string,
  options: SpawnOptions = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error) =>
      reject(
        new Error(
          `${command} could not run (${error.message}): install it (apt-get install ${debianPackage})`,
        ),
      ),
    );
    child.on('close', (status) => resolve({ status, output: `${stdout}${stderr}`, stdout }));
  });
}

/** Environment for Ansible runs: no colour, and the JSON callback when asked for. */
export const ansibleEnvironment = (json = false, extra: NodeJS.ProcessEnv = {}) => ({
  ...process.env,
  ANSIBLE_NOCOLOR: '1',
  ANSIBLE_FORCE_COLOR: '0',
  ...(json
    ? { ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS: '1' }
    : {}),
  ...extra,
});

export type HostValues = Record<string, Record<string, unknown>>;

/**
 * Runs one Ansible module ad hoc on every host of `pattern`, locally (`-c local`) and with
 * ansible/group_vars loaded as for site.yml; `extraVars` are `-e` arguments in order.
 */
export function adHoc(
  inventory: string,
  pattern: string,
  module: string,
  moduleArguments: string,
  extraVars: string[] = [],
  json = false,
): ToolResult {
  return runTool(
    'ansible',
    [
      pattern,
      '-i',
      inventory,
      '--playbook-dir',
      ansibleDirectory,
      '-c',
      'local',
      '-m',
      module,
      '-a',
      moduleArguments,
      ...extraVars.flatMap((value) => ['-e', value]),
    ],
    'ansible',
    { cwd: ansibleDirectory, env: ansibleEnvironment(json) },
  );
}

/**
 * Evaluates variables for every host of `pattern` the way a play of site.yml sees them: the
 * inventory, then ansible/group_vars (beside site.yml), then each `-e @file` in order (a role's
 * defaults passed this way show what that role alone would use). Nothing is contacted: debug runs
 * on the controller.
 */
export function evaluate(
  inventory: string,
  pattern: string,
  variables: string[],
  extraVarsFiles: string[] = [],
): HostValues {
  const expression = `{{ {${variables.map((name) => `${JSON.stringify(name)}: ${name}`).join(', ')}} }}`;
  const result = adHoc(
    inventory,
    pattern,
    'ansible.builtin.debug',
    `msg=${expression}`,
    extraVarsFiles.map((file) => `@${file}`),
    true,
  );
  if (result.status !== 0)
    throw new Error(`ansible could not evaluate ${variables}: ${result.output}`);
  const report = JSON.parse(result.stdout) as {
    plays: {
      tasks: { hosts: Record<string, { msg: Record<string, unknown>; failed?: boolean }> }[];
    }[];
  };
  const hosts = report.plays[0]?.tasks[0]?.hosts ?? {};
  return Object.fromEntries(
    Object.entries(hosts).map(([host, value]) => {
      if (value.failed) throw new Error(`ansible failed on ${host}: ${JSON.stringify(value)}`);
      return [host, value.msg];
    }),
  );
}

/** Writes a playbook running one task file of a role on `hosts`; returns its path. */
export function roleTasksPlaybook(
  directory: string,
  role: string,
  tasksFrom: string,
  hosts: string,
): string {
  const path = join(directory, `${role}-${tasksFrom}`);
  writeFileSync(
    path,
    stringify([
      {
        name: `Run ${tasksFrom} of the ${role} role`,
        hosts,
        gather_facts: false,
        tasks: [
          {
            name: `Include ${tasksFrom}`,
            'ansible.builtin.include_role': { name: role, tasks_from: tasksFrom },
          },
        ],
      },
    ]),
  );
  return path;
}
