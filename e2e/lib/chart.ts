/**
 * What the harness reads from the chart's values.yaml (the one source of the image names and
 * tags the stand-in images are built at and imported as).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { HarnessError } from './run.ts';
import { repositoryRoot } from './settings.ts';

/** The chart's values.yaml, parsed. */
export const chartValues = () =>
  parse(readFileSync(join(repositoryRoot, 'chart', 'values.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;

/** `<component>.image` of the chart's values. */
export const chartImage = (component: string) => {
  const image = (
    chartValues()[component] as { image?: { repository?: string; tag?: string } } | undefined
  )?.image;
  if (!image?.repository || !image.tag) {
    throw new HarnessError(`chart/values.yaml has no ${component}.image.repository and tag`);
  }
  return { repository: image.repository, tag: String(image.tag) };
};
