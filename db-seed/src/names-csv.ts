/** A first name row: one per (sex, name). */
export interface FirstNameRow {
  sex: 'F' | 'M';
  rank: number;
  name: string;
  count: number;
}

/** A surname row: one per name. */
export interface LastNameRow {
  rank: number;
  name: string;
  count: number;
}

const firstNamesHeader = 'sex,rank,name,count';
const lastNamesHeader = 'rank,name,count';
const namePattern = /^\p{L}[\p{L}' -]*$/u;

/** Writes first names as CSV (names never contain commas, see `namePattern`). */
export const formatFirstNamesCsv = (rows: FirstNameRow[]) =>
  `${[
    firstNamesHeader,
    ...rows.map((row) => `${row.sex},${row.rank},${row.name},${row.count}`),
  ].join('\n')}\n`;

/** Writes surnames as CSV. */
export const formatLastNamesCsv = (rows: LastNameRow[]) =>
  `${[lastNamesHeader, ...rows.map((row) => `${row.rank},${row.name},${row.count}`)].join('\n')}\n`;

const parse = <Row>(
  text: string,
  header: string,
  file: string,
  toRow: (fields: string[], where: string) => Row,
): Row[] => {
  const lines = text.split('\n').filter((line) => line.length > 0);
  if (lines[0] !== header) {
    throw new Error(`${file}: expected header "${header}", found "${lines[0] ?? ''}"`);
  }
  return lines.slice(1).map((line, index) => toRow(line.split(','), `${file}:${index + 2}`));
};

const positiveInteger = (value: string | undefined, what: string, where: string) => {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new Error(`${where}: ${what} must be a positive integer, found "${value ?? ''}"`);
  }
  return number;
};

const checkedName = (value: string | undefined, where: string) => {
  if (!value || !namePattern.test(value)) {
    throw new Error(`${where}: "${value ?? ''}" is not a name`);
  }
  return value;
};

/** Parses first_names.csv, naming the file and line of the first bad field. */
export const parseFirstNamesCsv = (text: string, file = 'first_names.csv'): FirstNameRow[] =>
  parse(text, firstNamesHeader, file, ([sex, rank, name, count], where) => {
    if (sex !== 'F' && sex !== 'M') throw new Error(`${where}: sex must be F or M, found "${sex}"`);
    return {
      sex,
      rank: positiveInteger(rank, 'rank', where),
      name: checkedName(name, where),
      count: positiveInteger(count, 'count', where),
    };
  });

/** Parses last_names.csv, naming the file and line of the first bad field. */
export const parseLastNamesCsv = (text: string, file = 'last_names.csv'): LastNameRow[] =>
  parse(text, lastNamesHeader, file, ([rank, name, count], where) => ({
    rank: positiveInteger(rank, 'rank', where),
    name: checkedName(name, where),
    count: positiveInteger(count, 'count', where),
  }));
