import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerWav2Pcap } from '../../src/cli/wav2pcap.js';
import { encodeWav16 } from '../../src/audio/wav.js';
import { parseCapture } from '../../src/audio/pcap.js';
import { extractRtpStreams } from '../../src/audio/rtp-streams.js';
import { goertzelPower } from '../../src/audio/tone.js';

describe('voiceguard wav2pcap', () => {
  it('converts a 16 kHz WAV into a 1 s PCMU RTP pcap (50 packets) that tshark reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vg-w2p-'));
    const wav = join(dir, 'in.wav');
    writeFileSync(
      wav,
      encodeWav16(
        Float32Array.from({ length: 16000 }, (_, i) => 0.3 * Math.sin(i / 5)),
        16000,
      ),
    );
    const program = new Command().exitOverride();
    registerWav2Pcap(program);
    const out = join(dir, 'out.pcap');
    await program.parseAsync(['wav2pcap', wav, out, '--dst', '127.0.0.1:7078'], { from: 'user' });
    const rows = execFileSync(
      'tshark',
      ['-r', out, '-d', 'udp.port==7078,rtp', '-T', 'fields', '-e', 'rtp.p_type'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n');
    expect(rows.length).toBe(50);
    expect(new Set(rows)).toEqual(new Set(['0']));
  });

  it('writes G.729 (payload type 18, 20 bytes a packet) that tshark reads and analyze decodes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vg-w2p-'));
    const wav = join(dir, 'in.wav');
    const tone = Float32Array.from(
      { length: 8000 },
      (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / 8000),
    );
    writeFileSync(wav, encodeWav16(tone, 8000));
    const program = new Command().exitOverride();
    registerWav2Pcap(program);
    const out = join(dir, 'out.pcap');
    await program.parseAsync(['wav2pcap', wav, out, '--codec', 'g729', '--dst', '127.0.0.1:7078'], {
      from: 'user',
    });
    const rows = execFileSync(
      'tshark',
      ['-r', out, '-d', 'udp.port==7078,rtp', '-T', 'fields', '-e', 'rtp.p_type', '-e', 'udp.length'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n');
    expect(rows.length).toBe(50);
    expect(new Set(rows)).toEqual(new Set(['18\t40'])); // 8 UDP + 12 RTP + 20 payload bytes
    const [stream] = extractRtpStreams(parseCapture(readFileSync(out)));
    expect(stream).toMatchObject({ codec: 'g729', packetCount: 50, durationMs: 1000 });
    // The 440 Hz tone comes back, 5 ms late (the codec's look-ahead).
    const x = stream!.samples8k;
    expect(goertzelPower(x.subarray(800), 440, 8000)).toBeGreaterThan(
      50 * goertzelPower(x.subarray(800), 1000, 8000),
    );
    await expect(
      program.parseAsync(['wav2pcap', wav, out, '--codec', 'opus'], { from: 'user' }),
    ).rejects.toThrow(/--codec must be pcmu, pcma or g729, got opus/);
  });
});
