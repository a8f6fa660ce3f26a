import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadAudioFile, to8k } from '../audio/load-audio.js';
import { parseEndpoint, writeRtpPcap } from '../audio/pcap-writer.js';

/** `voiceguard wav2pcap`: any WAV → 8 kHz → G.711 (or G.729) RTP pcap, replayable by sipp's play_pcap_audio. */
export function registerWav2Pcap(program: Command): void {
  program
    .command('wav2pcap')
    .description(
      'Convert a WAV file into an RTP (G.711, or G.729 where its codec is built) pcap that sipp can play with play_pcap_audio',
    )
    .argument('<in.wav>', 'input WAV file (any rate, PCM/float/G.711, mono or stereo)')
    .argument('<out.pcap>', 'output pcap file')
    .option('--codec <codec>', 'pcmu, pcma or g729 (payload type 18)', 'pcmu')
    .option('--src <ip:port>', 'source address of the RTP packets', '127.0.0.1:40000')
    .option('--dst <ip:port>', 'destination address of the RTP packets', '127.0.0.1:6000')
    .option('--channel <n>', 'channel to use for stereo files, or "mix"', '0')
    .action(
      async (
        input: string,
        output: string,
        opts: { codec: string; src: string; dst: string; channel: string },
      ) => {
        if (opts.codec !== 'pcmu' && opts.codec !== 'pcma' && opts.codec !== 'g729')
          throw new Error(`--codec must be pcmu, pcma or g729, got ${opts.codec}`);
        const channel = opts.channel === 'mix' ? 'mix' : Number(opts.channel);
        const audio = await loadAudioFile(input, { channel });
        const pcap = writeRtpPcap({
          samples: to8k(audio),
          codec: opts.codec,
          src: parseEndpoint(opts.src),
          dst: parseEndpoint(opts.dst),
        });
        await writeFile(output, pcap);
        process.stderr.write(
          `wrote ${output}: ${(audio.durationMs / 1000).toFixed(2)} s of ${opts.codec} RTP\n`,
        );
      },
    );
}
