#!/usr/bin/env node
/**
 * `node scripts/lifeline.ts COMMAND [ARGS…]`: runs COMMAND in this process's group (dev-server.ts
 * starts this as the leader of a group of its own) and kills the whole group when stdin closes,
 * that is when the parent holding the other end of the pipe is gone, however it died: a parent
 * killed with SIGKILL (`kill -9` of `npm start`'s group) cannot stop wrangler dev itself.
 * Exits as COMMAND exits; SIGINT, SIGTERM and SIGHUP are COMMAND's to handle (they reach the group).
 */
import { spawn } from "node:child_process";

const [command, ...args] = process.argv.slice(2);
if (command === undefined) {
  process.stderr.write("usage: lifeline.ts COMMAND [ARGS…]\n");
  process.exit(2);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});
const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 0 : 1)));
const orphaned = () => process.kill(0, "SIGKILL"); // 0: this process group (wrangler, workerd, this)
process.stdin.on("end", orphaned);
process.stdin.on("error", orphaned);
process.stdin.resume();
