import { describe, expect, it } from 'vitest';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';

function collect(depth: number) {
  const out: { v: number; kind: string }[] = [];
  const jb = new JitterBuffer(depth, 0xff, (p, kind) => out.push({ v: p[0], kind }));
  const push = (seq: number) => jb.push(seq, new Uint8Array([seq & 0xff]));
  return { jb, out, push };
}

describe('JitterBuffer', () => {
  it('plays in-order packets out at once', () => {
    const { out, push } = collect(3);
    for (const s of [10, 11, 12]) push(s);
    expect(out.map((o) => o.v)).toEqual([10, 11, 12]);
  });

  it('reorders within its depth and drops duplicates and late packets', () => {
    const { jb, out, push } = collect(3);
    for (const s of [1, 3, 3, 2, 4, 1]) push(s); // 3 twice while waiting; 1 after it played
    expect(out.map((o) => o.v)).toEqual([1, 2, 3, 4]);
    expect(jb.stats.duplicates).toBe(1);
    expect(jb.stats.late).toBe(1);
  });

  it('conceals a lost packet once depth packets wait behind it: repeat once, then silence', () => {
    const { jb, out, push } = collect(2);
    for (const s of [1, 4, 5]) push(s);
    expect(out).toEqual([{ v: 1, kind: 'packet' }]);
    push(6); // three waiting > depth 2: give up on 2
    expect(out.map((o) => [o.v, o.kind])).toEqual([
      [1, 'packet'],
      [1, 'concealed'],
      [0xff, 'concealed'],
      [4, 'packet'],
      [5, 'packet'],
      [6, 'packet'],
    ]);
    expect(jb.stats.concealed).toBe(2);
  });

  it('handles the 16-bit sequence wrap', () => {
    const { out, push } = collect(3);
    for (const s of [65534, 0, 65535, 1]) push(s);
    expect(out.map((o) => o.v)).toEqual([0xfe, 0xff, 0, 1]);
  });

  it('restarts on a sequence jump instead of discarding the new stream', () => {
    const { jb, out, push } = collect(3);
    push(100);
    push(30000);
    push(30001);
    expect(out.map((o) => o.v)).toEqual([100, 30000 & 0xff, 30001 & 0xff]);
    expect(jb.stats.resets).toBe(1);
  });

  it('flush plays out what waits, concealing gaps', () => {
    const { out, push, jb } = collect(5);
    push(1);
    push(3);
    jb.flush();
    expect(out.map((o) => o.kind)).toEqual(['packet', 'concealed', 'packet']);
  });
});
