import { open } from 'node:fs/promises';
import { loadAudioFile, to8k } from '../audio/load-audio.js';
import type { RtpStreamInfo } from '../audio/rtp-streams.js';

/**
 * Turns a file given to `voiceguard analyze` into the 8 kHz caller audio to analyse: a WAV in
 * any format src/audio decodes (resampled to 8 kHz), or a pcap/pcapng capture, from which the
 * caller's RTP stream (or, with `allStreams`, every decodable RTP stream) is taken.
 */

export interface AnalysisInput {
  /** null for the file's only/caller stream; a description of the stream with allStreams. */
  stream: string | null;
  samples8k: Float32Array;
  /** The stream's codec in a capture ('pcmu', 'pcma', 'g729'); null for an audio file. */
  codec: string | null;
}

export class InputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InputError';
  }
}

const PCAP_MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a]);

export async function isCaptureFile(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && PCAP_MAGICS.has(head.readUInt32BE(0));
  } finally {
    await fh.close();
  }
}

export interface AnalysisInputs {
  inputs: AnalysisInput[];
  /** Damage the file survived (a truncated capture), one line each. */
  warnings: string[];
}

export async function loadAnalysisInputs(
  path: string,
  opts: { allStreams: boolean },
): Promise<AnalysisInputs> {
  if (!(await isCaptureFile(path))) {
    return {
      inputs: [{ stream: null, samples8k: to8k(await loadAudioFile(path)), codec: null }],
      warnings: [],
    };
  }
  // Loaded on first use, so WAV analysis never waits for (or trips over) the capture readers.
  const [{ scanCapture }, { RtpStreamCollector }] = await Promise.all([
    import('../audio/pcap.js'),
    import('../audio/rtp-streams.js'),
  ]);
  // Streamed: the file is read in chunks and only RTP audio payloads are kept; without --all-streams,
  // only the caller's once the SIP offer and the caller's stream have named it.
  const collector = new RtpStreamCollector({ audio: opts.allStreams ? 'all' : 'caller' });
  const capture = await scanCapture(path, (d) => collector.add(d), {
    onTcpSegment: (seg) => collector.addTcp(seg),
  });
  const streams = collector.finish();
  if (streams.length === 0)
    throw new InputError('no PCMU/PCMA RTP stream (nor G.729, where its codec is built) in the capture');
  const chosen = opts.allStreams ? streams : [streams.find((s) => s.isCaller) ?? streams[0]];
  return {
    inputs: chosen.map((s) => ({
      stream: opts.allStreams ? describeStream(s) : null,
      samples8k: s.samples8k,
      codec: s.codec,
    })),
    warnings: [
      ...capture.warnings,
      ...chosen
        .filter((s) => s.lostCount > 0)
        .map((s) => `${describeStream(s)}: ${s.lostCount} RTP packets lost, filled with silence`),
    ],
  };
}

export function describeStream(s: RtpStreamInfo): string {
  const ssrc = `0x${(s.ssrc >>> 0).toString(16).padStart(8, '0')}`;
  return `ssrc=${ssrc} ${s.src}->${s.dst} ${s.codec}${s.isCaller ? ' caller' : ''}`;
}
