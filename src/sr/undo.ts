// Undo for multi-step operations (Incus's "reverter"): each finished step
// registers how to take itself back; if a later step fails, the registered
// undos run newest first and the original error is rethrown. An undo that fails
// is logged and the rest still run, so one stuck step does not strand the others;
// whatever is left is what the next scan or `flatsnap gc` repairs.
import { log } from '../log.js';

export interface UndoStep {
  what: string;
  run: () => Promise<void>;
}

export class Undo {
  private steps: UndoStep[] = [];

  /** Registers the undo of a step that has just completed. */
  add(what: string, run: () => Promise<void>): void {
    this.steps.push({ what, run });
  }

  get pending(): readonly string[] {
    return this.steps.map((s) => s.what);
  }

  /** The operation completed: nothing is to be undone. */
  commit(): void {
    this.steps = [];
  }

  /** Runs every registered undo, newest first; returns the ones that failed. */
  async rollback(): Promise<Array<{ what: string; error: unknown }>> {
    const failed: Array<{ what: string; error: unknown }> = [];
    for (const step of this.steps.reverse()) {
      try {
        await step.run();
        log().info(`undo: ${step.what}`);
      } catch (error) {
        failed.push({ what: step.what, error });
        log().error(`undo failed: ${step.what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.steps = [];
    return failed;
  }
}

/** Runs `fn` with an Undo; on failure rolls back the finished steps and rethrows. */
export async function withUndo<T>(fn: (undo: Undo) => Promise<T>): Promise<T> {
  const undo = new Undo();
  try {
    const result = await fn(undo);
    undo.commit();
    return result;
  } catch (e) {
    await undo.rollback();
    throw e;
  }
}
