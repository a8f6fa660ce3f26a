import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:store` must not rot: a small run (1000 calls, 5000 for the known-caller lookup) of
 * the built bench. Timings are never checked; that every part ran and wrote its rows is.
 */
describe('bench:store', () => {
  it('runs every part on a small store', async () => {
    expect(existsSync('dist/bench/store.js'), 'run `npm run build` first (npm test does)').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/store.js'], {
      env: { ...process.env, VG_BENCH_CALLS: '1000', VG_BENCH_HISTORY_CALLS: '5000' },
      timeout: 120_000,
    });
    const r = JSON.parse(stdout.split('\n')[0]!) as {
      calls: number;
      write: Record<string, number>;
      query: Record<string, number>;
      knownCaller: { calls: number; callers: number; medianMs: number; baselineNoIndexMedianMs: number };
      live: { checkpointInWorker: { rowsWritten: number } };
    };
    expect(r.calls).toBe(1000);
    expect(r.knownCaller).toMatchObject({ calls: 5000, callers: 1000 });
    expect(r.knownCaller.medianMs).toBeGreaterThan(0);
    expect(r.knownCaller.baselineNoIndexMedianMs).toBeGreaterThan(0);
    expect(r.write.flushUsPerRow).toBeGreaterThan(0);
    expect(r.query.firstPageMs).toBeGreaterThan(0);
    expect(r.live.checkpointInWorker.rowsWritten).toBeGreaterThan(0);
  });
});
