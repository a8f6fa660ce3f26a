import { beforeAll, describe, expect, it } from 'vitest';
import { fingerprint, type AudioFingerprint } from '../../src/audio/audio-fingerprint.js';
import { decodeG711ToFloat, encodeG711FromFloat } from '../../src/audio/g711.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';
import {
  RepeatIndex,
  RepeatIndexOptionsError,
  type RepeatIndexOptions,
} from '../../src/detect/repeat-index.js';

const OPTS: RepeatIndexOptions = {
  maxCalls: 100,
  windowMs: 3_600_000,
  maxFrames: 500,
  maxBitErrorRate: 0.25,
  minOverlapFrames: 100,
};
const NAMES = [
  'synthetic-mimic3-1',
  'synthetic-tortoise-1',
  'human-librispeech-1',
  'human-librispeech-2',
  'human-fsdd-1',
];
const pcm = new Map<string, Float32Array>();

/** One call's fork: `lead` seconds of line noise first, then the recording at `gain`, over G.711 `law`. */
function call(
  name: string,
  leadS: number,
  gain: number,
  law: 'pcmu' | 'pcma',
  seed: number,
): AudioFingerprint {
  const src = pcm.get(name)!;
  const lead = Math.round(leadS * 8000);
  const out = new Float32Array(lead + src.length);
  let x = seed;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x / 2 ** 32 - 0.5) * 0.002; // about -60 dBFS of hiss
  }
  for (let i = 0; i < src.length; i++) out[lead + i]! += src[i]! * gain;
  return fingerprint(decodeG711ToFloat(law, encodeG711FromFloat(law, out)));
}

beforeAll(async () => {
  for (const n of NAMES) pcm.set(n, to8k(await loadAudioFile(`test/fixtures/${n}.wav`)));
});

describe('RepeatIndex', () => {
  it('finds every earlier play of one recording, across callers, gains, codecs and start times', () => {
    const index = new RepeatIndex(OPTS);
    expect(
      index.matchAndRemember({
        callId: 'c1',
        callerKey: 'p:a',
        atMs: 1000,
        fingerprint: call('synthetic-mimic3-1', 0.2, 1, 'pcmu', 1),
      }),
    ).toEqual([]);
    const second = index.matchAndRemember({
      callId: 'c2',
      callerKey: 'p:b',
      atMs: 2000,
      fingerprint: call('synthetic-mimic3-1', 1.13, 0.3, 'pcma', 2),
    });
    expect(second.map((m) => m.callId)).toEqual(['c1']);
    expect(second[0]!.bitErrorRate).toBeLessThan(0.2);
    // The recording starts 0.93 s later in c2 than in c1.
    expect(Math.abs(second[0]!.offsetMs - 930)).toBeLessThanOrEqual(8);
    const third = index.matchAndRemember({
      callId: 'c3',
      callerKey: 'p:c',
      atMs: 3000,
      fingerprint: call('synthetic-mimic3-1', 0, 2, 'pcmu', 3),
    });
    expect(third.map((m) => m.callerKey)).toEqual(['p:a', 'p:b']);
    expect(index.size).toBe(3);
  });

  it('matches no different utterance, human or synthetic', () => {
    const index = new RepeatIndex(OPTS);
    let seed = 10;
    for (const n of NAMES) {
      expect(
        index.matchAndRemember({
          callId: n,
          callerKey: n,
          atMs: seed,
          fingerprint: call(n, 0.5, 1, 'pcmu', seed++),
        }),
        n,
      ).toEqual([]);
    }
    // Silence and line noise alone are never audible enough to match.
    const quiet = fingerprint(new Float32Array(40_000));
    expect(index.matchAndRemember({ callId: 'q1', callerKey: 'x', atMs: 100, fingerprint: quiet })).toEqual(
      [],
    );
    expect(index.matchAndRemember({ callId: 'q2', callerKey: 'y', atMs: 101, fingerprint: quiet })).toEqual(
      [],
    );
  });

  it('forgets calls older than the window, and the oldest when full', () => {
    const windowed = new RepeatIndex({ ...OPTS, windowMs: 10_000 });
    windowed.matchAndRemember({
      callId: 'old',
      callerKey: 'a',
      atMs: 0,
      fingerprint: call('human-librispeech-1', 0, 1, 'pcmu', 1),
    });
    expect(
      windowed.matchAndRemember({
        callId: 'late',
        callerKey: 'b',
        atMs: 10_001,
        fingerprint: call('human-librispeech-1', 0, 1, 'pcmu', 2),
      }),
    ).toEqual([]);
    expect(windowed.size).toBe(1);

    const small = new RepeatIndex({ ...OPTS, maxCalls: 2 });
    small.matchAndRemember({
      callId: 'r1',
      callerKey: 'a',
      atMs: 1,
      fingerprint: call('human-fsdd-1', 0, 1, 'pcmu', 1),
    });
    small.matchAndRemember({
      callId: 'x1',
      callerKey: 'b',
      atMs: 2,
      fingerprint: call('human-librispeech-2', 0, 1, 'pcmu', 2),
    });
    small.matchAndRemember({
      callId: 'x2',
      callerKey: 'c',
      atMs: 3,
      fingerprint: call('synthetic-tortoise-1', 0, 1, 'pcmu', 3),
    });
    expect(small.size).toBe(2);
    // r1 was forgotten (its index entries too): only x1 is left to match.
    expect(
      small.matchAndRemember({
        callId: 'r2',
        callerKey: 'd',
        atMs: 4,
        fingerprint: call('human-fsdd-1', 0.3, 1, 'pcma', 4),
      }),
    ).toEqual([]);
    expect(
      small
        .matchAndRemember({
          callId: 'x3',
          callerKey: 'e',
          atMs: 5,
          fingerprint: call('synthetic-tortoise-1', 0.3, 1, 'pcma', 5),
        })
        .map((m) => m.callId),
    ).toEqual(['x2']);
  });

  it('keeps matching after the ring wraps many times (the index unlinks what it forgets)', () => {
    const index = new RepeatIndex({ ...OPTS, maxCalls: 3 });
    for (let i = 0; i < 20; i++) {
      const name = NAMES[i % NAMES.length]!;
      const m = index.matchAndRemember({
        callId: `k${i}`,
        callerKey: `c${i}`,
        atMs: i,
        fingerprint: call(name, (i % 4) * 0.1, 1, 'pcmu', i),
      });
      // With 3 slots and 5 names in turn, the same name was last seen 5 calls ago: forgotten.
      expect(m).toEqual([]);
    }
    const again = index.matchAndRemember({
      callId: 'k20',
      callerKey: 'z',
      atMs: 20,
      fingerprint: call(NAMES[19 % NAMES.length]!, 0.25, 1, 'pcma', 99),
    });
    expect(again.map((m) => m.callId)).toEqual(['k19']);
  });

  it('restores remembered calls without comparing them, in time order, within the window and maxCalls', () => {
    const index = new RepeatIndex({ ...OPTS, maxCalls: 3, windowMs: 10_000 });
    const fp = (name: string, seed: number) => call(name, 0, 1, 'pcmu', seed);
    // Out of order on purpose; 'stale' is older than the window before the newest entry, and with
    // maxCalls 3 the oldest of the four in-window entries ('fsdd') is forgotten too.
    const restored = index.restore([
      { callId: 'lib1', callerKey: 'a', atMs: 20_000, fingerprint: fp('human-librispeech-1', 1) },
      { callId: 'stale', callerKey: 'b', atMs: 1_000, fingerprint: fp('human-librispeech-2', 2) },
      { callId: 'tort', callerKey: 'c', atMs: 19_000, fingerprint: fp('synthetic-tortoise-1', 3) },
      { callId: 'fsdd', callerKey: 'd', atMs: 15_000, fingerprint: fp('human-fsdd-1', 4) },
      { callId: 'mimic', callerKey: 'e', atMs: 18_000, fingerprint: fp('synthetic-mimic3-1', 5) },
    ]);
    expect(restored).toBe(3);
    const at = 21_000;
    const ids = (name: string, seed: number) =>
      index
        .matchAndRemember({
          callId: `q${seed}`,
          callerKey: 'z',
          atMs: at,
          fingerprint: call(name, 0.2, 0.7, 'pcma', seed),
        })
        .map((m) => m.callId);
    // Each query is remembered too and pushes the oldest slot out (maxCalls 3), so the order matters.
    expect(ids('human-fsdd-1', 11)).toEqual([]); // 'fsdd' was the oldest past maxCalls
    expect(ids('synthetic-tortoise-1', 12)).toEqual(['tort']);
    expect(ids('human-librispeech-2', 13)).toEqual([]); // 'stale' fell out of the window
  });

  it('forgets erased calls at once and keeps its age order (tombstones are reused in turn)', () => {
    const index = new RepeatIndex({ ...OPTS, maxCalls: 3 });
    const add = (callId: string, name: string, seed: number, atMs: number) =>
      index
        .matchAndRemember({
          callId,
          callerKey: callId,
          atMs,
          fingerprint: call(name, (seed % 3) * 0.1, 1, 'pcmu', seed),
        })
        .map((m) => m.callId);
    add('a', 'human-librispeech-1', 1, 1);
    add('b', 'human-librispeech-2', 2, 2);
    add('c', 'synthetic-tortoise-1', 3, 3);
    expect(index.forget(['b', 'nope'])).toBe(1);
    expect(index.forget(['b'])).toBe(0);
    expect(add('b2', 'human-librispeech-2', 4, 4)).toEqual([]); // erased: not found (a's slot is reused)
    expect(add('c2', 'synthetic-tortoise-1', 5, 5)).toEqual(['c']); // reuses b's tombstone
    expect(add('b3', 'human-librispeech-2', 6, 6)).toEqual(['b2']); // reuses c's slot; b2 remembered
    expect(index.size).toBe(3);
  });

  it('refuses options it cannot honour', () => {
    expect(() => new RepeatIndex({ ...OPTS, maxCalls: 0 })).toThrow(RepeatIndexOptionsError);
    expect(() => new RepeatIndex({ ...OPTS, maxBitErrorRate: 0.5 })).toThrow(/maxBitErrorRate/);
    expect(() => new RepeatIndex({ ...OPTS, maxFrames: 2 ** 30 })).toThrow(/maxFrames/);
    expect(() => new RepeatIndex({ ...OPTS, windowMs: 0 })).toThrow(/windowMs/);
  });
});
