import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AudioFormatError, decodeWav, encodeWav16 } from '../../src/audio/wav.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';
import { writeRtpPcap } from '../../src/audio/pcap-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'vg-wav-'));
const tone = Float32Array.from({ length: 1600 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 8000));

describe('decodeWav', () => {
  it('round-trips encodeWav16', () => {
    const a = decodeWav(encodeWav16(tone, 8000));
    expect(a.format).toBe('pcm16');
    expect(a.durationMs).toBe(200);
    for (let i = 0; i < tone.length; i++)
      expect(Math.abs(a.samples[i] - tone[i])).toBeLessThan(1 / 32768 + 1e-7);
  });
  for (const [args, format] of [
    [['-e', 'signed', '-b', '24'], 'pcm24'],
    [['-e', 'signed', '-b', '32'], 'pcm32'],
    [['-e', 'unsigned', '-b', '8'], 'pcm8'],
    [['-e', 'float', '-b', '32'], 'float32'],
    [['-e', 'mu-law', '-b', '8'], 'mulaw'],
    [['-e', 'a-law', '-b', '8'], 'alaw'],
  ] as const) {
    it(`decodes a sox-written ${format} stereo file at 44.1 kHz, channel 1 and mix`, () => {
      const src = join(dir, 'src.wav');
      writeFileSync(src, encodeWav16(tone, 8000));
      const out = join(dir, `${format}.wav`);
      execFileSync('sox', [src, ...args, '-r', '44100', '-c', '2', out]);
      const a = decodeWav(readFileSync(out), { channel: 1 });
      expect(a.format).toBe(format);
      expect(a.sampleRateHz).toBe(44100);
      expect(a.channelCount).toBe(2);
      const back = to8k(a);
      let err = 0;
      for (let i = 200; i < 1400; i++) err = Math.max(err, Math.abs(back[i] - tone[i]));
      expect(err).toBeLessThan(format === 'pcm8' || format === 'mulaw' || format === 'alaw' ? 0.05 : 0.01);
      expect(decodeWav(readFileSync(out), { channel: 'mix' }).samples.length).toBe(a.samples.length);
    });
  }
  it('gives typed errors on bad input', () => {
    const good = encodeWav16(tone, 8000);
    expect(() => decodeWav(good.subarray(0, 8))).toThrow(/truncated header/);
    expect(() => decodeWav(new Uint8Array(100))).toThrow(AudioFormatError);
    const bad = good.slice();
    bad[20] = 0x55;
    expect(() => decodeWav(bad)).toThrow(/unsupported format code 85/);
    expect(() => decodeWav(good.subarray(0, 36))).toThrow(/no data chunk/);
    expect(() => decodeWav(good, { channel: 3 })).toThrow(AudioFormatError);
    let seed = 7;
    for (let k = 0; k < 2000; k++) {
      const f = good.slice(0, 44 + (k % 50));
      for (let j = 0; j < 4; j++) f[(seed = (seed * 69069 + 1) >>> 0) % f.length] = seed >>> 24;
      try {
        decodeWav(f);
      } catch (e) {
        expect(e).toBeInstanceOf(AudioFormatError);
      }
    }
  });
  it('loadAudioFile names the file in errors', async () => {
    await expect(loadAudioFile(join(dir, 'missing.wav'))).rejects.toThrow(/missing\.wav: cannot read file/);
  });
});

describe('writeRtpPcap', () => {
  it('writes a pcap tshark decodes as RTP with 20 ms spacing', () => {
    const f = join(dir, 'rtp.pcap');
    writeFileSync(
      f,
      writeRtpPcap({
        samples: tone,
        codec: 'pcma',
        src: '10.0.0.1:40000',
        dst: { address: '10.0.0.2', port: 20000 },
      }),
    );
    const out = execFileSync(
      'tshark',
      [
        '-r',
        f,
        '-d',
        'udp.port==20000,rtp',
        '-T',
        'fields',
        '-e',
        'frame.time_relative',
        '-e',
        'rtp.p_type',
        '-e',
        'rtp.seq',
        '-e',
        'udp.checksum.status',
        '-o',
        'udp.check_checksum:TRUE',
      ],
      { encoding: 'utf8' },
    );
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(rows.length).toBe(10);
    rows.forEach((r, i) => {
      expect(Number(r[0])).toBeCloseTo(i * 0.02, 6);
      expect(r[1]).toBe('8');
      expect(Number(r[2])).toBe(1000 + i);
      expect(r[3]).toBe('1'); // tshark: 0 bad, 1 good, 2 unverified
    });
  });
});
