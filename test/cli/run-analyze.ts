import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MODEL_PATH } from '../detect/helpers.js';

/**
 * The built CLI, run as a user runs it: `node dist/src/cli/main.js analyze ...` on real files.
 * (npm test builds first; run `npx tsc -p tsconfig.build.json` before running a test alone.)
 */

const execFileP = promisify(execFile);
export const CLI = 'dist/src/cli/main.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function analyze(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const modelArgs = process.env.VOICEGUARD_TEST_MODEL ? ['--model', MODEL_PATH] : [];
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, 'analyze', ...modelArgs, ...args], {
      env: { ...process.env, ...extraEnv },
      maxBuffer: 32 << 20,
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
