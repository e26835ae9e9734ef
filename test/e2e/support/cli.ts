/** Runs the real `tollgate` CLI (cli/tollgate.ts) as an operator would. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface CLIResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** The CLI with these arguments; `env` is added to this process's environment. */
export async function runTollgate(args: string[], env: Record<string, string> = {}): Promise<CLIResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["cli/tollgate.ts", ...args], { env: { ...process.env, ...env } });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as CLIResult;
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

/** The CLI on a local state directory. */
export function runCLI(stateDir: string, ...args: string[]): Promise<CLIResult> {
  return runTollgate([...args, "--persist-to", stateDir]);
}

/** Creates a client on a local state directory with the CLI and returns its new secret. */
export async function createClientWithCLI(stateDir: string, clientId: string, scope: string, audience: string): Promise<string> {
  const result = await runCLI(stateDir, "clients", "create", clientId, "--scope", scope, "--audience", audience, "--json");
  if (result.code !== 0) throw new Error(`tollgate clients create ${clientId} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { client_secret: string }).client_secret;
}
