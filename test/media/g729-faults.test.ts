import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createMediaRelay, type MediaRelay } from '../../src/media/media-relay.js';
import { generateTone } from '../../src/audio/tone.js';
import { peer, rtp, sleep, waitFor, type Peer } from './udp-peer.js';

/**
 * A G.729 channel that bcg729 cannot open (it returns NULL only when out of memory, which a test
 * cannot cause): the codec module is replaced so that opening a channel throws. The relay must fail
 * open: packets still relayed, the fork given silence, an injection refused with the reason.
 */
vi.mock('../../src/audio/g729.js', async (orig) => {
  const real = await orig<typeof import('../../src/audio/g729.js')>();
  const refuse = class {
    constructor() {
      throw new Error('g729: bcg729 could not open a channel');
    }
  };
  return {
    ...real,
    loadG729: () => ({ codec: { G729Decoder: refuse, G729Encoder: refuse }, error: null }),
  };
});

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup.length = 0;
});

describe('G.729 channel faults in the relay (fail open)', () => {
  it('relays every packet, gives the fork silence, and refuses the injection with the reason', async () => {
    const cfg = ConfigSchema.parse({
      media: { bindHost: '127.0.0.1', portMin: 45000, portMax: 45099, workers: 1, jitterBufferMs: 0 },
    }).media;
    // In this thread, so the replaced module is the one the relay uses.
    const relay: MediaRelay = await createMediaRelay(cfg, silentLogger, { inThread: true });
    const s = await relay.allocate('call-g729-fault');
    const a: Peer = await peer();
    const b: Peer = await peer();
    cleanup.push(
      () => relay.close(),
      () => a.close(),
      () => b.close(),
    );
    s.setPayloadMap('a', { 18: 'g729' });
    s.setPayloadMap('b', { 18: 'g729' });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const got: Float32Array[] = [];
    s.startFork((x) => got.push(x));
    await sleep(20); // the fork is switched on by a message, like everything the relay is told
    for (let i = 0; i < 10; i++)
      await a.send(rtp(i, i * 160, 0xa, new Uint8Array(20).fill(i), 18), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 10, 3000, 'all relayed');
    // Fork batches of 60 ms: the first nine packets' worth arrives.
    const heard = () => got.reduce((n, x) => n + x.length, 0);
    await waitFor(() => heard() >= 9 * 160, 3000, 'fork output');
    expect(got.every((x) => x.every((v) => v === 0))).toBe(true);
    await expect(
      s.inject('b', generateTone({ frequenciesHz: [1400], durationMs: 100, levelDbfs: -6 })),
    ).rejects.toThrow(/G\.729 encoder: g729: bcg729 could not open a channel/);
    await sleep(100);
    expect(b.got.length).toBe(10);
    // The relay goes on.
    await a.send(rtp(10, 1600, 0xa, new Uint8Array(20), 18), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 11, 3000, 'relayed after the fault');
  });
});
