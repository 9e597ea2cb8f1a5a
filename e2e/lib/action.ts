/**
 * The harness is a list of actions in the order a person would do them by hand. `up` runs
 * each one's `up` (idempotent: an action finds what is already done and skips it), `down`
 * runs each one's `down` in reverse, `status` asks each what it sees.
 */
import { HarnessError } from './run.ts';

export interface Action {
  /** Short name, shown with its timing. */
  name: string;
  /** What `up` does, as a sentence. */
  description: string;
  up(): Promise<void> | void;
  down?(): Promise<void> | void;
  /** One line about what is running, for `status`. */
  status?(): string | Promise<string>;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs the actions' `up` in order, printing each step and its duration; returns the timings. */
export const runUp = async (actions: Action[]) => {
  const timings: Array<{ name: string; ms: number }> = [];
  const started = Date.now();
  for (const [index, action] of actions.entries()) {
    const stepStarted = Date.now();
    console.log(`[${index + 1}/${actions.length}] ${action.name}: ${action.description}`);
    try {
      await action.up();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new HarnessError(
        `step ${action.name} failed after ${seconds(Date.now() - stepStarted)}: ${message}`,
      );
    }
    const ms = Date.now() - stepStarted;
    timings.push({ name: action.name, ms });
    console.log(`      ${action.name} done in ${seconds(ms)}`);
  }
  console.log(`up: done in ${seconds(Date.now() - started)}`);
  return timings;
};

/** Runs every action's `down` in reverse order; keeps going past failures and reports them. */
export const runDown = async (actions: Action[]) => {
  const failures: string[] = [];
  for (const action of [...actions].reverse()) {
    if (!action.down) continue;
    try {
      await action.down();
    } catch (error) {
      failures.push(`${action.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return failures;
};
