import { describe, expect, it } from 'vitest';
import {
  bitErrorRate,
  fingerprint,
  fingerprintFrames,
  FINGERPRINT_HOP_SAMPLES,
  popcount32,
  type AudioFingerprint,
} from '../../src/audio/audio-fingerprint.js';
import { decodeG711ToFloat, encodeG711FromFloat } from '../../src/audio/g711.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';

async function fixture(name: string): Promise<Float32Array> {
  return to8k(await loadAudioFile(`test/fixtures/${name}.wav`));
}

/** What a second call makes of the same recording: other gain, other start, G.711 both ways. */
function overTheLine(
  pcm: Float32Array,
  gain: number,
  leadSamples: number,
  law: 'pcmu' | 'pcma',
): Float32Array {
  const out = new Float32Array(leadSamples + pcm.length);
  for (let i = 0; i < pcm.length; i++) out[leadSamples + i] = pcm[i]! * gain;
  return decodeG711ToFloat(law, encodeG711FromFloat(law, out));
}

/** The lowest bit error rate over offsets within ±maxShift frames (the alignment search). */
function bestRate(
  a: AudioFingerprint,
  b: AudioFingerprint,
  maxShift: number,
): { rate: number; offset: number } {
  let best = { rate: 1, offset: 0 };
  for (let d = -maxShift; d <= maxShift; d++) {
    const r = bitErrorRate(a, b, d);
    if (r.frames >= 100 && r.rate < best.rate) best = { rate: r.rate, offset: d };
  }
  return best;
}

describe('audio fingerprint', () => {
  it('counts bits', () => {
    expect(popcount32(0)).toBe(0);
    expect(popcount32(0xffffffff)).toBe(32);
    expect(popcount32(0x80000001)).toBe(2);
    expect(popcount32(0x12345678)).toBe(13);
  });

  it('has one frame per 8 ms hop after the first 64 ms', () => {
    expect(fingerprintFrames(511)).toBe(0);
    expect(fingerprintFrames(512)).toBe(1);
    expect(fingerprintFrames(512 + 64 * 10)).toBe(11);
    const fp = fingerprint(new Float32Array(8000));
    expect(fp.bits.length).toBe(fingerprintFrames(8000));
    // Digital silence is never audible, so it can never match anything.
    expect(fp.audible.every((a) => a === 0)).toBe(true);
  });

  it('gives a second play of one recording nearly the same bits, at its offset', async () => {
    for (const name of ['synthetic-mimic3-1', 'human-librispeech-1']) {
      const pcm = await fixture(name);
      const a = fingerprint(overTheLine(pcm, 1, 0, 'pcmu'));
      // 0.37 s later, 9 dB quieter, A-law: offset 0.37 s = 46.25 hops, so between two frames.
      const lead = Math.round(0.37 * 8000);
      const b = fingerprint(overTheLine(pcm, 0.35, lead, 'pcma'));
      const best = bestRate(a, b, 80);
      expect(Math.abs(best.offset - lead / FINGERPRINT_HOP_SAMPLES)).toBeLessThanOrEqual(1);
      expect(best.rate).toBeLessThan(0.15);
    }
  });

  it('survives packet loss: 5% of 20 ms frames lost (silence in their place)', async () => {
    for (const name of ['synthetic-mimic3-1', 'human-librispeech-1']) {
      const pcm = await fixture(name);
      const a = fingerprint(overTheLine(pcm, 1, 0, 'pcmu'));
      const lossy = overTheLine(pcm, 0.8, 800, 'pcma');
      let seed = 7;
      for (let f = 0; f + 160 <= lossy.length; f += 160) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        if (seed / 2 ** 32 < 0.05) lossy.fill(0, f, f + 160);
      }
      const best = bestRate(a, fingerprint(lossy), 80);
      expect(Math.abs(best.offset - 800 / FINGERPRINT_HOP_SAMPLES)).toBeLessThanOrEqual(1);
      expect(best.rate).toBeLessThan(0.25);
    }
  });

  it('tells different utterances apart, whatever the alignment', async () => {
    const names = [
      'synthetic-mimic3-1',
      'synthetic-tortoise-1',
      'human-librispeech-1',
      'human-librispeech-2',
      'human-fsdd-1',
    ];
    const fps = await Promise.all(
      names.map(async (n) => fingerprint(overTheLine(await fixture(n), 1, 0, 'pcmu'))),
    );
    for (let i = 0; i < fps.length; i++) {
      for (let j = i + 1; j < fps.length; j++) {
        expect(bestRate(fps[i]!, fps[j]!, 200).rate, `${names[i]} vs ${names[j]}`).toBeGreaterThan(0.3);
      }
    }
  });
});
