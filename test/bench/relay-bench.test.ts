import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * `npm run bench:relay` must not rot: a small run (5 calls, 1 s each mode) of the built bench.
 * Timings are never checked; that every mode relayed its packets, the SRTP mode through real
 * encryption on one side and decryption on the other, is.
 */
describe('bench:relay', () => {
  it('relays every packet in the bare, relay, SRTP-terminating (AES-CM and AES-GCM) and G.729 modes', async () => {
    expect(existsSync('dist/bench/relay.js'), 'run `npm run build` first (npm test does)').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/relay.js'], {
      // The fork on, so the G.729 row decodes what it relays.
      env: { ...process.env, BENCH_CALLS: '5', BENCH_SECONDS: '1', BENCH_FORK: '1' },
      timeout: 60_000,
    });
    const r = JSON.parse(stdout.slice(0, stdout.indexOf('\nmode'))) as Record<
      'baseline' | 'relay' | 'srtp' | 'srtpGcm' | 'g729',
      { packetsSent: number; packetsReceived: number; cpuUsPerPacket: number }
    >;
    for (const mode of ['baseline', 'relay', 'srtp', 'srtpGcm', 'g729'] as const) {
      // 5 calls x 2 directions x 50 packets/s for 1 s, give or take a tick at the edges.
      expect(r[mode].packetsSent, mode).toBeGreaterThanOrEqual(450);
      // The last packets may still be in flight when the measurement stops.
      expect(r[mode].packetsReceived, mode).toBeGreaterThanOrEqual(r[mode].packetsSent - 20);
      expect(r[mode].cpuUsPerPacket, mode).toBeGreaterThan(0);
    }
  });
});
