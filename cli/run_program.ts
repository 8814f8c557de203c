/**
 * What the program runs, chosen before anything else is loaded: a serving child
 * (`tallyho _child`) loads only the server's child (server/process/child_main.ts) and a hold
 * client (`tallyho _hold`) only its own module; everything else loads the command line
 * (main.ts), with every command, the admin API and the load generator. A serving process then
 * does not hold the modules it never runs (docs/tuning.md, "Memory").
 *
 * @module
 */

import { CHILD_COMMAND } from "../server/process/child_command.ts";
import { HOLD_CHILD_COMMAND } from "../load/hold_child_command.ts";

/**
 * Runs the program.
 *
 * @param args The arguments, without the runtime and script.
 * @returns The exit code, once the command is done.
 */
export async function runProgram(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === CHILD_COMMAND) {
    const { runChild } = await import("../server/process/child_main.ts");
    return await runChild();
  }
  if (command === HOLD_CHILD_COMMAND) {
    const { runHoldChild } = await import("../load/hold_child.ts");
    return await runHoldChild(rest);
  }
  const { main } = await import("./main.ts");
  return await main(args);
}
