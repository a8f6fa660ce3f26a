import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerWav2Pcap } from '../../src/cli/wav2pcap.js';
import { encodeWav16 } from '../../src/audio/wav.js';

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
});
