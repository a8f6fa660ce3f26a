import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  aLawToLinear,
  decodeALaw,
  decodeMuLaw,
  encodeALaw,
  encodeMuLaw,
  linearToALaw,
  linearToMuLaw,
  muLawToLinear,
} from '../../src/audio/g711.js';

// Independent reference: the classic Sun/CCITT formulation (bias 0x84 for mu-law, segment
// shifting for A-law), written differently from the G.191 form used in src.
function refUlawDecode(u: number): number {
  u = ~u & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}
function refAlawDecode(a: number): number {
  a ^= 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

describe('G.711', () => {
  it('decodes all 256 mu-law and A-law codes like the reference', () => {
    for (let c = 0; c < 256; c++) {
      expect(muLawToLinear(c)).toBe(refUlawDecode(c));
      expect(aLawToLinear(c)).toBe(refAlawDecode(c));
    }
  });
  it('matches spot values from the standard', () => {
    expect(muLawToLinear(0x00)).toBe(-32124);
    expect(muLawToLinear(0x80)).toBe(32124);
    expect(muLawToLinear(0xff)).toBe(0);
    expect(muLawToLinear(0x7f)).toBe(0);
    expect(muLawToLinear(0xfe)).toBe(8);
    expect(aLawToLinear(0xd5)).toBe(8);
    expect(aLawToLinear(0x55)).toBe(-8);
    expect(aLawToLinear(0xaa)).toBe(32256);
    expect(aLawToLinear(0x2a)).toBe(-32256);
    expect(linearToMuLaw(0)).toBe(0xff);
    expect(linearToALaw(0)).toBe(0xd5);
  });
  it('encode(decode(code)) == code for all codes (mu-law 0x7F is negative zero -> 0xFF)', () => {
    for (let c = 0; c < 256; c++) {
      expect(linearToALaw(aLawToLinear(c))).toBe(c);
      expect(linearToMuLaw(muLawToLinear(c))).toBe(c === 0x7f ? 0xff : c);
    }
  });
  it('decoded values are strictly monotonic over the code order and encoding is monotonic', () => {
    const mu = Array.from({ length: 256 }, (_, c) => muLawToLinear(c));
    const neg = mu.slice(0, 128); // 0x00 (most negative) .. 0x7F
    const pos = mu.slice(128).reverse(); // 0xFF (0) .. 0x80 (max)
    for (let i = 1; i < 128; i++) expect(neg[i]).toBeGreaterThan(neg[i - 1]);
    for (let i = 1; i < 128; i++) expect(pos[i]).toBeGreaterThan(pos[i - 1]);
    let prev = -Infinity;
    for (let s = -32768; s < 32768; s += 7) {
      const v = muLawToLinear(linearToMuLaw(s));
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
    prev = -Infinity;
    for (let s = -32768; s < 32768; s += 7) {
      const v = aLawToLinear(linearToALaw(s));
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
  });
  it('bulk helpers agree with the scalar ones', () => {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const mu = decodeMuLaw(codes);
    const a = decodeALaw(codes);
    for (let c = 0; c < 256; c++) {
      expect(mu[c]).toBe(muLawToLinear(c));
      expect(a[c]).toBe(aLawToLinear(c));
    }
    const pcm = Int16Array.from({ length: 4096 }, (_, i) => i * 16 - 32768);
    const eu = encodeMuLaw(pcm);
    const ea = encodeALaw(pcm);
    for (let i = 0; i < pcm.length; i++) {
      expect(eu[i]).toBe(linearToMuLaw(pcm[i]));
      expect(ea[i]).toBe(linearToALaw(pcm[i]));
    }
  });
  it.skipIf(!existsSync('/usr/bin/sox'))('decodes all codes identically to sox', () => {
    const codes = Buffer.from(Uint8Array.from({ length: 256 }, (_, i) => i));
    for (const [enc, fn] of [
      ['mu-law', muLawToLinear],
      ['a-law', aLawToLinear],
    ] as const) {
      const out = execFileSync(
        'sox',
        [
          '-t',
          'raw',
          '-r',
          '8000',
          '-e',
          enc,
          '-b',
          '8',
          '-c',
          '1',
          '-',
          '-t',
          'raw',
          '-e',
          'signed',
          '-b',
          '16',
          '-L',
          '-',
        ],
        { input: codes },
      );
      for (let c = 0; c < 256; c++) expect(out.readInt16LE(c * 2)).toBe(fn(c));
    }
  });
});
