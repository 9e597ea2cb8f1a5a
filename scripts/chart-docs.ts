/**
 * Writes the values table of chart/README.md from chart/values.yaml: every value is documented
 * by a comment `# <dotted.name> -- <description>` (on the value, or on its parent block), and
 * its default comes from the parsed YAML. The table sits between the markers
 * `<!-- values:start -->` and `<!-- values:end -->`.
 *
 * Usage: node scripts/chart-docs.ts            rewrite the table
 *        node scripts/chart-docs.ts --check    exit 1 when the README is out of date, a value
 *                                              has no comment, or a comment names no value
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** One documenting comment of values.yaml. */
export interface ValueDoc {
  name: string;
  description: string;
  line: number;
}

export const startMarker = '<!-- values:start -->';
export const endMarker = '<!-- values:end -->';

const docLine = /^\s*#\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s+--\s+(.+?)\s*$/;
const commentLine = /^\s*#\s?(.*?)\s*$/;

/**
 * The `# name -- description` comments of a values file, in file order. A comment line right
 * below one (not itself `name --`) continues its description.
 */
export const collectValueDocs = (text: string): ValueDoc[] => {
  const docs: ValueDoc[] = [];
  let previous: ValueDoc | undefined;
  text.split('\n').forEach((line, index) => {
    const doc = docLine.exec(line);
    if (doc) {
      previous = { name: doc[1] as string, description: doc[2] as string, line: index + 1 };
      docs.push(previous);
      return;
    }
    const continuation = commentLine.exec(line);
    if (previous && continuation?.[1]) previous.description += ` ${continuation[1]}`;
    else previous = undefined;
  });
  return docs;
};

type Tree = Record<string, unknown>;
const isTree = (value: unknown): value is Tree =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Dotted paths of the leaves: scalars, lists and empty maps. */
export const leafPaths = (node: unknown, prefix = ''): string[] =>
  isTree(node) && Object.keys(node).length > 0
    ? Object.entries(node).flatMap(([key, child]) =>
        leafPaths(child, prefix ? `${prefix}.${key}` : key),
      )
    : [prefix];

const lookUp = (values: unknown, name: string) =>
  name
    .split('.')
    .reduce<{ found: boolean; value: unknown }>(
      ({ found, value }, key) =>
        found && isTree(value) && Object.hasOwn(value, key)
          ? { found, value: value[key] }
          : { found: false, value: undefined },
      { found: true, value: values },
    );

/** Values without a comment (on them or a parent) and comments that name no value. */
export const documentationProblems = (values: unknown, docs: ValueDoc[]): string[] => {
  const names = new Set(docs.map((doc) => doc.name));
  const documented = (path: string) =>
    path.split('.').some((_, index, keys) => names.has(keys.slice(0, index + 1).join('.')));
  return [
    ...leafPaths(values)
      .filter((path) => !documented(path))
      .map((path) => `${path} has no "# ${path} -- <description>" comment`),
    ...docs
      .filter((doc) => !lookUp(values, doc.name).found)
      .map((doc) => `line ${doc.line}: the comment names ${doc.name}, which is not a value`),
  ];
};

const cell = (text: string) =>
  text.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** The markdown table: one row per comment that names a value, with its parsed default. */
export const valuesTable = (values: unknown, docs: ValueDoc[]): string =>
  [
    '| value | default | description |',
    '| --- | --- | --- |',
    ...docs.flatMap((doc) => {
      const { found, value } = lookUp(values, doc.name);
      if (!found) return [];
      const shown = JSON.stringify(value).replaceAll('|', '\\|');
      return [`| \`${doc.name}\` | \`${shown}\` | ${cell(doc.description)} |`];
    }),
  ].join('\n');

/** The README with the table between the markers replaced; throws when a marker is missing. */
export const withTable = (readme: string, table: string): string => {
  const start = readme.indexOf(startMarker);
  const end = readme.indexOf(endMarker);
  if (start < 0 || end < start) {
    throw new Error(`the README needs ${startMarker} and then ${endMarker}`);
  }
  return `${readme.slice(0, start + startMarker.length)}\n\n${table}\n\n${readme.slice(end)}`;
};

/** What the generator would do for a chart: problems, and the README it would write. */
export const documentChart = (valuesText: string, readme: string) => {
  const values: unknown = parse(valuesText);
  const docs = collectValueDocs(valuesText);
  return {
    problems: documentationProblems(values, docs),
    readme: withTable(readme, valuesTable(values, docs)),
  };
};

const main = (argv: string[]) => {
  const valuesFile = fileURLToPath(new URL('../chart/values.yaml', import.meta.url));
  const readmeFile = fileURLToPath(new URL('../chart/README.md', import.meta.url));
  const current = readFileSync(readmeFile, 'utf8');
  const { problems, readme } = documentChart(readFileSync(valuesFile, 'utf8'), current);
  for (const problem of problems) console.error(`chart/values.yaml: ${problem}`);
  if (argv.includes('--check')) {
    if (readme !== current) {
      console.error(
        'chart/README.md: the values table is out of date: run node scripts/chart-docs.ts',
      );
    }
    return problems.length === 0 && readme === current ? 0 : 1;
  }
  if (readme !== current) writeFileSync(readmeFile, readme);
  console.log(`chart/README.md: ${readme === current ? 'up to date' : 'values table written'}`);
  return problems.length === 0 ? 0 : 1;
};

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
