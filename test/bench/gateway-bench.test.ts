import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:gateway` must not rot: a tiny run (2 calls, 1 s) of the built bench against a real
 * gateway process. Only that it works is checked (calls set up, audio relayed both ways, verdicts
 * in the analysed run, none in the baseline), never its timings.
 */
describe('bench:gateway', () => {
  it('runs both modes end to end on a tiny load', async () => {
    expect(existsSync('dist/bench/gateway.js'), 'run `npm run build` first (npm test does)').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/gateway.js'], {
      env: { ...process.env, BENCH_CALLS: '2', BENCH_HOLD_S: '3', BENCH_SECONDS: '2' },
      timeout: 90_000,
    });
    const json = JSON.parse(stdout.slice(0, stdout.indexOf('\n}\n') + 2)) as {
      results: {
        mode: string;
        verdictCodecs: Record<string, number>;
        callsSetUp: number;
        callsFailed: number;
        packetsSent: number;
        packetsReceived: number;
        verdicts: Record<string, number>;
        cpuMsPerCallSecond: number;
      }[];
    };
    expect(json.results.map((r) => r.mode)).toEqual(['baseline', 'analysed']);
    for (const r of json.results) {
      expect(r.callsFailed).toBe(0);
      expect(r.packetsSent).toBeGreaterThan(100);
      expect(r.packetsReceived).toBeGreaterThan(0.9 * r.packetsSent);
      expect(r.cpuMsPerCallSecond).toBeGreaterThan(0);
    }
    const [baseline, analysed] = json.results;
    expect(Object.values(baseline!.verdicts).reduce((a, b) => a + b, 0)).toBe(0);
    expect(Object.values(analysed!.verdicts).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    expect(Object.keys(analysed!.verdictCodecs)).toEqual(['pcmu']);
  }, 120_000);

  it('BENCH_CODEC=g729: the calls are set up, relayed and analysed in G.729', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/gateway.js'], {
      env: {
        ...process.env,
        BENCH_CALLS: '2',
        BENCH_HOLD_S: '3',
        BENCH_SECONDS: '2',
        BENCH_MODES: 'analysed',
        BENCH_CODEC: 'g729',
      },
      timeout: 90_000,
    });
    const json = JSON.parse(stdout.slice(0, stdout.indexOf('\n}\n') + 2)) as {
      codec: string;
      results: {
        mode: string;
        callsFailed: number;
        packetsSent: number;
        packetsReceived: number;
        verdicts: Record<string, number>;
        verdictCodecs: Record<string, number>;
      }[];
    };
    expect(json.codec).toBe('g729');
    expect(json.results.map((r) => r.mode)).toEqual(['analysed']);
    const [r] = json.results;
    expect(r!.callsFailed).toBe(0);
    expect(r!.packetsSent).toBeGreaterThan(100);
    expect(r!.packetsReceived).toBeGreaterThan(0.9 * r!.packetsSent);
    expect(Object.values(r!.verdicts).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    expect(Object.keys(r!.verdictCodecs)).toEqual(['g729']);
  }, 120_000);
});
