import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CallEventBus } from '../../src/call-events.js';
import { validateConfig } from '../../src/config/load-config.js';
import { Gateway, type RepeatStore } from '../../src/gateway.js';
import { freeSipPort } from './sipp-harness.js';

/**
 * A store that fails while the repeat index loads from it (detector.repeat.persist) must not stop
 * the gateway: it logs the fault and starts with an empty index. A disk fault at that moment cannot
 * be caused on demand, so this store is a stand-in that throws.
 */
describe('repeat index store faults fail open', () => {
  it('a failing load or delete is logged, and the gateway runs on with an empty index', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split('\n'))
            if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
          cb();
        },
      }),
    );
    const calls: string[] = [];
    const broken: RepeatStore = {
      saveFingerprint: () => calls.push('save'),
      recentFingerprints: () => {
        calls.push('load');
        throw new Error('disk I/O error');
      },
      deleteFingerprints: () => {
        calls.push('delete');
        throw new Error('disk I/O error');
      },
    };
    const config = validateConfig({ sip: { listen: { host: '127.0.0.1', port: await freeSipPort() } } });
    const gateway = new Gateway({
      config,
      logger,
      bus: new CallEventBus(),
      policy: {
        evaluate: () => {
          throw new Error('no calls in this test');
        },
      },
      engine: null,
      relay: null,
      repeatStore: broken,
    });
    try {
      const events = () => lines.filter((l) => l.event === 'repeat.restore_error');
      expect(calls).toEqual(['load']);
      expect(events()).toMatchObject([{ err: 'disk I/O error', calls: 0 }]);
      gateway.setConfig(
        validateConfig({
          sip: config.sip,
          detector: { repeat: { persist: false } },
        }),
      );
      expect(calls).toEqual(['load', 'delete']);
      expect(events()).toHaveLength(2);
    } finally {
      await gateway.close();
    }
  });
});
