import { open } from 'node:fs/promises';

/*
 * Typed boundary to src/audio's file readers (docs/interfaces.md), loaded on first use. The
 * audio front lands separately; until it does, analysing a file reports that clearly.
 */
interface DecodedAudio {
  sampleRateHz: number;
  samples: Float32Array;
}
interface RtpStreamInfo {
  ssrc: number;
  src: string;
  dst: string;
  codec: string;
  samples8k?: Float32Array;
  isCaller: boolean;
}
interface AudioFront {
  loadAudioFile(path: string): Promise<DecodedAudio>;
  to8k(audio: DecodedAudio): Float32Array;
  extractCaptureStreams(path: string): Promise<RtpStreamInfo[]>;
}

let front: Promise<AudioFront> | null = null;
function audioFront(): Promise<AudioFront> {
  const load = async (): Promise<AudioFront> => {
    const spec = (m: string): string => `../audio/${m}.js`;
    try {
      const la = (await import(spec('load-audio'))) as Pick<AudioFront, 'loadAudioFile' | 'to8k'>;
      const rtp = (await import(spec('rtp-streams'))) as {
        extractRtpStreams(input: unknown): RtpStreamInfo[] | Promise<RtpStreamInfo[]>;
      };
      const pcap = (await import(spec('pcap'))) as Record<string, (path: string) => unknown>;
      const read = pcap.readCapture ?? pcap.readPcapFile;
      return {
        loadAudioFile: (p) => la.loadAudioFile(p),
        to8k: (a) => la.to8k(a),
        extractCaptureStreams: async (p) => rtp.extractRtpStreams(read ? await read(p) : p),
      };
    } catch (err) {
      throw new InputError(`audio decoding is not available in this build (${(err as Error).message})`, {
        cause: err,
      });
    }
  };
  front ??= load();
  return front;
}

/**
 * Turns a file given to `voiceguard analyze` into the 8 kHz caller audio to analyse: a WAV in
 * any format src/audio decodes (resampled to 8 kHz), or a pcap/pcapng capture, from which the
 * caller's RTP stream (or, with `allStreams`, every decodable RTP stream) is taken.
 */

export interface AnalysisInput {
  /** null for the file's only/caller stream; a description of the stream with allStreams. */
  stream: string | null;
  samples8k: Float32Array;
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

export async function loadAnalysisInputs(
  path: string,
  opts: { allStreams: boolean },
): Promise<AnalysisInput[]> {
  const audio = await audioFront();
  if (!(await isCaptureFile(path))) {
    return [{ stream: null, samples8k: audio.to8k(await audio.loadAudioFile(path)) }];
  }
  const streams = (await audio.extractCaptureStreams(path)).filter((s) => s.samples8k !== undefined);
  if (streams.length === 0) throw new InputError('no PCMU/PCMA RTP stream in the capture');
  if (opts.allStreams)
    return streams.map((s) => ({ stream: describeStream(s), samples8k: s.samples8k as Float32Array }));
  const caller = streams.find((s) => s.isCaller) ?? streams[0];
  return [{ stream: null, samples8k: caller.samples8k as Float32Array }];
}

export function describeStream(s: RtpStreamInfo): string {
  const ssrc = `0x${(s.ssrc >>> 0).toString(16).padStart(8, '0')}`;
  return `ssrc=${ssrc} ${s.src}->${s.dst} ${s.codec}${s.isCaller ? ' caller' : ''}`;
}
