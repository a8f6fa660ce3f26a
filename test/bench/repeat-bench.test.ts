import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:repeat` must not rot: a small run (300 remembered calls, 20 queries) of the built
 * bench. Its timings are never checked; what it found is (every replay, no false match, every replay
 * again after a restart through the store).
 */
describe('bench:repeat', () => {
  it('runs on a small index and finds every replay and nothing else', async () => {
    expect(existsSync('dist/bench/repeat.js'), 'run `npm run build` first (npm test does)').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', 'dist/bench/repeat.js'], {
      env: { ...process.env, VG_BENCH_CALLS: '300', VG_BENCH_QUERIES: '20' },
      timeout: 120_000,
    });
    const r = JSON.parse(stdout.split('\n')[0]!) as {
      calls: number;
      replays: number;
      replaysFound: number;
      falseMatches: number;
      freshQueries: number;
      match: { medianMs: number; baselineBruteForceMs: number };
      bytesPerRememberedCall: number;
      restart: {
        replays: number;
        replaysFoundAfter: number;
        replaysFoundWithoutStore: number;
        loadMs: number;
      };
    };
    expect(r.calls).toBe(300);
    expect(r.replays).toBe(10);
    expect(r.replaysFound).toBe(10);
    expect(r.freshQueries).toBe(10);
    expect(r.falseMatches).toBe(0);
    expect(r.match.medianMs).toBeGreaterThan(0);
    expect(r.match.baselineBruteForceMs).toBeGreaterThan(0);
    expect(r.bytesPerRememberedCall).toBeGreaterThan(0);
    // After a restart the index loaded from the store finds the replays; an empty one cannot.
    expect(r.restart.replays).toBe(20);
    expect(r.restart.replaysFoundAfter).toBe(20);
    expect(r.restart.replaysFoundWithoutStore).toBe(0);
    expect(r.restart.loadMs).toBeGreaterThanOrEqual(0);
  });
});
