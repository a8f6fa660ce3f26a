import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { G729_FRAME_BYTES, G729_FRAME_SAMPLES, loadG729 } from '../../src/audio/g729.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';

const fixture = (name: string) => join(import.meta.dirname, '..', 'fixtures', name);

function g729() {
  const { codec, error } = loadG729();
  if (!codec) throw new Error(`the G.729 addon must be built for these tests: ${error}`);
  return codec;
}

function toInt16(x: Float32Array): Int16Array {
  const n = Math.floor(x.length / G729_FRAME_SAMPLES) * G729_FRAME_SAMPLES;
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(x[i]! * 32768)));
  return out;
}

/** Best normalised correlation of b against a over lags 0..maxLag (the codec delays the signal). */
function bestCorrelation(a: Int16Array, b: Float32Array, maxLag: number): { c: number; lag: number } {
  let best = { c: -1, lag: 0 };
  for (let lag = 0; lag <= maxLag; lag++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i + lag < b.length && i < a.length; i++) {
      ab += a[i]! * b[i + lag]!;
      aa += a[i]! * a[i]!;
      bb += b[i + lag]! * b[i + lag]!;
    }
    const c = ab / Math.sqrt(aa * bb);
    if (c > best.c) best = { c, lag };
  }
  return best;
}

describe('G.729 addon (bcg729)', () => {
  it('is built and loads', () => {
    const { codec, error } = loadG729();
    expect(error).toBeNull();
    expect(typeof codec?.G729Decoder).toBe('function');
  });

  it('round-trips human speech: 10 bytes per 10 ms, and the decoded speech follows the input after the 5 ms look-ahead', async () => {
    const { G729Decoder, G729Encoder } = g729();
    const speech = toInt16(to8k(await loadAudioFile(fixture('human-librispeech-1.wav'))));
    const enc = new G729Encoder();
    const bits = enc.encode(speech);
    expect(bits.length).toBe((speech.length / G729_FRAME_SAMPLES) * G729_FRAME_BYTES);
    const dec = new G729Decoder();
    // As RTP carries it: two frames per 20 ms packet.
    const parts: Float32Array[] = [];
    for (let p = 0; p < bits.length; p += 2 * G729_FRAME_BYTES)
      parts.push(dec.decode(bits.subarray(p, p + 20)));
    const out = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of parts) {
      out.set(x, o);
      o += x.length;
    }
    expect(out.length).toBe(speech.length);
    const { c, lag } = bestCorrelation(speech, out, 120);
    expect(lag).toBe(40); // 5 ms look-ahead at 8 kHz
    expect(c).toBeGreaterThan(0.8);
    // The same bits through a fresh decoder give the same samples (the state is per channel).
    const again = new G729Decoder().decode(bits.subarray(0, 20));
    expect(Array.from(again)).toEqual(Array.from(out.subarray(0, 160)));
    enc.close();
    dec.close();
  });

  it('conceals lost frames, decodes a trailing SID frame, and rejects what is not G.729 with a reason', () => {
    const { G729Decoder, G729Encoder } = g729();
    const dec = new G729Decoder();
    expect(dec.conceal(3).length).toBe(240);
    expect(dec.decode(new Uint8Array(22)).length).toBe(240); // two frames + SID
    expect(() => dec.decode(new Uint8Array(7))).toThrow(RangeError);
    expect(() => dec.decode(new Uint8Array(7))).toThrow(/7 bytes is not N 10-byte frames/);
    expect(() => dec.decode(new Uint8Array(0))).toThrow(RangeError);
    expect(() => dec.decode('x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => dec.conceal(0)).toThrow(RangeError);
    expect(() => dec.conceal(1.5 as number)).not.toThrow(); // truncated to a whole frame
    const enc = new G729Encoder();
    expect(() => enc.encode(new Int16Array(81))).toThrow(/whole number of 80-sample/);
    expect(() => enc.encode(new Float32Array(80) as unknown as Int16Array)).toThrow(TypeError);
    // A method called on the other class's object (or a plain one) is refused, never run on it.
    const callOn = (fn: unknown, self: unknown, arg: unknown) =>
      (fn as (a: unknown) => unknown).call(self, arg);
    expect(() => callOn(G729Decoder.prototype.decode, new G729Encoder(), new Uint8Array(10))).toThrow(
      TypeError,
    );
    expect(() => callOn(G729Encoder.prototype.encode, dec, new Int16Array(80))).toThrow(TypeError);
    expect(() => callOn(G729Decoder.prototype.conceal, {}, 1)).toThrow(TypeError);
    dec.close();
    dec.close(); // idempotent
    expect(() => dec.decode(new Uint8Array(10))).toThrow(/closed/);
    enc.close();
    expect(() => enc.encode(new Int16Array(80))).toThrow(/closed/);
  });

  it('loads in a worker thread too (the relay decodes in its workers)', async () => {
    const addon = join(import.meta.dirname, '..', '..', 'native', 'g729', 'build', 'Release', 'g729.node');
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { G729Decoder } = require(workerData);
       parentPort.postMessage(new G729Decoder().decode(new Uint8Array(20)).length);`,
      { eval: true, workerData: addon },
    );
    const n = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    expect(n).toBe(160);
    await w.terminate();
  });

  it('says why when the addon is missing, and throws nothing', () => {
    const r = loadG729('/nonexistent/g729.node');
    expect(r.codec).toBeNull();
    expect(r.error).toMatch(/is not built \(install libbcg729-dev/);
  });
});
