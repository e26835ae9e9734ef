/** Runs the real `tollgate` CLI (cli/tollgate.ts) on a local state directory, as an operator would. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface CLIResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCLI(stateDir: string, ...args: string[]): Promise<CLIResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["cli/tollgate.ts", ...args, "--persist-to", stateDir]);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as CLIResult;
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
