import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/**
 * 10,000 streams opened, fed and closed (some mid-inference) must leave nothing behind. Runs in
 * a child process with --expose-gc so the heap can be measured after real collections.
 */
describe('detector stream lifecycle', () => {
  it('10,000 opened and closed streams leave no growth in heap or handles', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', 'test/detect/stream-lifecycle.child.ts', '10000'],
      { env: process.env, maxBuffer: 1 << 20, timeout: 180_000 },
    );
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.activeStreams).toBe(0);
    // Every tenth stream completes windows, so inference really ran for the closed streams too.
    expect(r.windowsScored).toBeGreaterThan(900);
    expect(r.inferenceErrors).toBe(0);
    expect(r.resAfter).toEqual(r.resBefore);
    // A leak of even 1 KB per stream would show as 10 MB; allow 2 MB of allocator noise.
    expect(r.heapAfter - r.heapBefore).toBeLessThan(2 * 1024 * 1024);
  }, 200_000);
});
