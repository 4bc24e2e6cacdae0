import { execFile } from 'node:child_process';

export interface PromtoolRun {
  code: number;
  output: string;
}

/** Runs Debian's promtool (package `prometheus`) and returns its exit code and combined output. */
export function promtool(args: string[], cwd?: string): Promise<PromtoolRun> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}
