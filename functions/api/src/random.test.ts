import test from 'ava';
import { seededRandom, systemRandom } from './random.ts';

test('the same seed gives the same sequence, another seed another', (t) => {
  const draw = (seed: string) => Array.from({ length: 20 }, () => seededRandom(seed).int(1000));
  const sequence = (seed: string) => {
    const random = seededRandom(seed);
    return Array.from({ length: 20 }, () => random.int(1000));
  };
  t.deepEqual(sequence('agent-007'), sequence('agent-007'));
  t.notDeepEqual(sequence('agent-007'), sequence('agent-008'));
  t.is(new Set(draw('x')).size, 1, 'a fresh generator restarts the sequence');
});

test('draws stay inside [0, bound) and cover it', (t) => {
  for (const random of [seededRandom('bounds'), systemRandom]) {
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const value = random.int(7);
      t.true(Number.isInteger(value) && value >= 0 && value < 7);
      seen.add(value);
    }
    t.is(seen.size, 7);
  }
});

test('a bad bound is refused', (t) => {
  t.throws(() => seededRandom('s').int(0), { instanceOf: RangeError });
});
