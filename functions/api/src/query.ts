import { problem } from '@secretid/lib/problem';
import { type Gender, genders } from './catalog.ts';

/** A validated /randomName request. */
export interface NameQuery {
  gender?: Gender;
  /** Absent: one identity as an object; present: a list of this many. */
  count?: number;
  seed?: string;
  weighted: boolean;
}

export const maxCount = 100;
export const maxSeedLength = 128;
/** The parameters `/randomName` accepts; any other is refused. */
export const queryParameters = ['gender', 'count', 'seed', 'weighted'] as const;
const known = new Set<string>(queryParameters);

/**
 * Validates query parameters; every rejection names the parameter and what it accepts.
 * @example parseNameQuery(new URLSearchParams('gender=female&count=3'))
 */
export const parseNameQuery = (params: URLSearchParams): NameQuery => {
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!known.has(key)) {
      throw problem(400, `unknown parameter "${key}"; accepted: ${[...known].join(', ')}`);
    }
    if (seen.has(key)) throw problem(400, `parameter "${key}" is given more than once`);
    seen.add(key);
  }
  const query: NameQuery = { weighted: false };
  const gender = params.get('gender');
  if (gender !== null) {
    if (!genders.includes(gender as Gender)) {
      throw problem(400, `gender must be one of ${genders.join(', ')}, got "${gender}"`);
    }
    query.gender = gender as Gender;
  }
  const count = params.get('count');
  if (count !== null) {
    const value = Number(count);
    if (!/^\d+$/.test(count) || value < 1 || value > maxCount) {
      throw problem(400, `count must be an integer from 1 to ${maxCount}, got "${count}"`);
    }
    query.count = value;
  }
  const seed = params.get('seed');
  if (seed !== null) {
    // Characters as a person counts them (Unicode code points), not UTF-16 units: an emoji is one.
    const characters = [...seed].length;
    if (characters === 0 || characters > maxSeedLength) {
      throw problem(400, `seed must be 1 to ${maxSeedLength} characters, got ${characters}`);
    }
    query.seed = seed;
  }
  const weighted = params.get('weighted');
  if (weighted !== null) {
    if (weighted !== 'true' && weighted !== 'false') {
      throw problem(400, `weighted must be true or false, got "${weighted}"`);
    }
    query.weighted = weighted === 'true';
  }
  return query;
};
