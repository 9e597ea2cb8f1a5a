/**
 * Commands of the docs, run as written: the shell blocks of a section of a Markdown file,
 * in order, each run by bash with the cluster's kubeconfig and the project's kubectl and helm.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repositoryRoot } from '../../lib/settings.ts';
import { shellEnvironment } from './cluster.ts';

/**
 * The ```sh blocks between the heading `from` and the next heading of the same or a higher
 * level, without the list indentation they carry in the Markdown. Throws when the section or
 * its blocks are missing, so a renamed heading fails the test instead of running nothing.
 */
export const shellBlocks = (file: string, from: string) => {
  const lines = readFileSync(join(repositoryRoot, file), 'utf8').split('\n');
  const start = lines.findIndex((line) => line.trim() === from);
  if (start < 0) throw new Error(`${file} has no heading "${from}"`);
  const level = (from.match(/^#+/)?.[0] ?? '').length;
  const blocks: string[] = [];
  let block: string[] | undefined;
  let indent = '';
  for (const line of lines.slice(start + 1)) {
    const heading = /^(#+) /.exec(line);
    if (!block && heading && (heading[1] as string).length <= level) break;
    const fence = /^(\s*)```(\w*)\s*$/.exec(line);
    if (fence && !block && fence[2] === 'sh') {
      block = [];
      indent = fence[1] as string;
    } else if (fence && block && fence[1] === indent && fence[2] === '') {
      blocks.push(block.join('\n'));
      block = undefined;
    } else if (block) {
      block.push(line.startsWith(indent) ? line.slice(indent.length) : line);
    }
  }
  if (blocks.length === 0) throw new Error(`${file}, "${from}": no sh blocks`);
  return blocks;
};

/** Runs one block with bash (-e: the first failing command stops it); returns its output. */
export const runBlock = (block: string, options: { cwd?: string; timeoutMs?: number } = {}) => {
  const result = spawnSync('bash', ['-euo', 'pipefail', '-c', block], {
    cwd: options.cwd ?? repositoryRoot,
    encoding: 'utf8',
    env: shellEnvironment(),
    timeout: options.timeoutMs ?? 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    status: result.status,
    output: `${result.stdout}${result.stderr}${result.error ? String(result.error) : ''}`,
  };
};

/**
 * Runs a section's blocks one at a time, as a person types them into one terminal: the shell
 * variables a block assigns (NAME=... at the start of a line) are there for the next block.
 * Each block runs in its own bash -euo pipefail, with those variables carried in a file.
 */
export const shellSession = (
  blocks: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
) => {
  const names = [
    ...new Set(
      blocks.flatMap((block) => [...block.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1])),
    ),
  ];
  const folder = mkdtempSync(join(tmpdir(), 'secretid-e2e-shell-'));
  const state = join(folder, 'variables.sh');
  writeFileSync(state, '');
  let index = 0;
  return {
    /** Runs the next block; returns its exit status, output and the carried variables. */
    next: () => {
      const block = blocks[index] as string;
      index += 1;
      const save = names
        .map(
          (name) =>
            `[ -n "\${${name}+set}" ] && printf '%s=%q\\n' ${name} "$${name}" >> "$SECRETID_E2E_STATE.new"`,
        )
        .join('\n');
      const script = `. "$SECRETID_E2E_STATE"\n${block}\n: > "$SECRETID_E2E_STATE.new"\n${save}\nmv "$SECRETID_E2E_STATE.new" "$SECRETID_E2E_STATE"`;
      const result = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
        cwd: options.cwd ?? repositoryRoot,
        encoding: 'utf8',
        env: { ...shellEnvironment(), ...options.env, SECRETID_E2E_STATE: state },
        timeout: 10 * 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const variables = Object.fromEntries(
        readFileSync(state, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      return {
        status: result.status,
        output: `${result.stdout}${result.stderr}${result.error ? String(result.error) : ''}`,
        variables,
      };
    },
    close: () => rmSync(folder, { recursive: true, force: true }),
  };
};
