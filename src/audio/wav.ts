/**
 * WAV (RIFF/WAVE) decoding to float samples of one channel at the file's own rate.
 *
 * We walk the RIFF chunks ourselves, because real files carry things the `wav-decoder`
 * package does not handle: WAVE_FORMAT_EXTENSIBLE (0xFFFE), G.711 formats 6/7, data sizes of
 * 0 or 0xFFFFFFFF written by streaming tools (ffmpeg/sox on pipes), odd-sized chunks with a
 * pad byte, and truncated files (it reads past the end and throws a RangeError).
 * Sample conversion is split as follows:
 *   - `wav-decoder` (`decode.sync`, symmetric scaling): 16- and 32-bit integer PCM,
 *     32- and 64-bit float. We hand it a canonical header + the data bytes.
 *   - ourselves: 8-bit PCM (exact 0 for the 128 mid-code, which its symmetric mode lacks),
 *     24-bit PCM (its sign test maps the most negative code 0x800000 to +1.0), mu-law and
 *     A-law (via our bit-exact G.711 tables).
 */
import { createRequire } from 'node:module';
import { AudioFormatError } from './audio-format-error.js';
import { aLawToLinear, muLawToLinear } from './g711.js';

export { AudioFormatError } from './audio-format-error.js';

export interface DecodedAudio {
  sampleRateHz: number;
  channelCount: number;
  /** `pcm8`, `pcm16`, `pcm24`, `pcm32`, `float32`, `float64`, `mulaw`, `alaw` (or `rtp-pcmu`/`rtp-pcma` for captures). */
  format: string;
  /** The chosen channel (or the mix), at `sampleRateHz`, in [-1, 1]. */
  samples: Float32Array;
  durationMs: number;
}

export interface DecodeWavOptions {
  /** Channel index (default 0), or `'mix'` for the average of all channels. */
  channel?: number | 'mix';
}

/** The typed face of the untyped CommonJS `wav-decoder` package; the only place it is touched. */
interface WavDecoderModule {
  decode: {
    sync(
      buffer: ArrayBuffer,
      opts?: { symmetric?: boolean },
    ): { sampleRate: number; channelData: Float32Array[] };
  };
}
const wavDecoder = createRequire(import.meta.url)('wav-decoder') as WavDecoderModule;

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_ALAW = 0x0006;
const WAVE_FORMAT_MULAW = 0x0007;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

interface FmtChunk {
  formatCode: number;
  channelCount: number;
  sampleRateHz: number;
  blockAlign: number;
  bitsPerSample: number;
}

function fourcc(data: Uint8Array, offset: number): string {
  return String.fromCharCode(data[offset], data[offset + 1], data[offset + 2], data[offset + 3]);
}

function parseFmt(dv: DataView, offset: number, size: number): FmtChunk {
  if (size < 16) throw new AudioFormatError(`fmt chunk too short (${size} bytes, need 16)`);
  let formatCode = dv.getUint16(offset, true);
  const channelCount = dv.getUint16(offset + 2, true);
  const sampleRateHz = dv.getUint32(offset + 4, true);
  const blockAlign = dv.getUint16(offset + 12, true);
  const bitsPerSample = dv.getUint16(offset + 14, true);
  if (formatCode === WAVE_FORMAT_EXTENSIBLE) {
    // cbSize(2) validBits(2) channelMask(4) SubFormat GUID(16): the GUID's first two bytes are the format code.
    if (size < 40)
      throw new AudioFormatError(`WAVE_FORMAT_EXTENSIBLE fmt chunk too short (${size} bytes, need 40)`);
    formatCode = dv.getUint16(offset + 24, true);
  }
  return { formatCode, channelCount, sampleRateHz, blockAlign, bitsPerSample };
}

function formatName(fmt: FmtChunk): string {
  const { formatCode, bitsPerSample } = fmt;
  if (formatCode === WAVE_FORMAT_PCM && [8, 16, 24, 32].includes(bitsPerSample)) return `pcm${bitsPerSample}`;
  if (formatCode === WAVE_FORMAT_IEEE_FLOAT && (bitsPerSample === 32 || bitsPerSample === 64))
    return `float${bitsPerSample}`;
  if (formatCode === WAVE_FORMAT_MULAW && bitsPerSample === 8) return 'mulaw';
  if (formatCode === WAVE_FORMAT_ALAW && bitsPerSample === 8) return 'alaw';
  if ([WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_MULAW, WAVE_FORMAT_ALAW].includes(formatCode)) {
    throw new AudioFormatError(`unsupported bits per sample ${bitsPerSample} for format code ${formatCode}`);
  }
  throw new AudioFormatError(`unsupported format code ${formatCode} (0x${formatCode.toString(16)})`);
}

/** Decode the interleaved frames with wav-decoder (PCM 16/32, float 32/64). */
function decodeWithPackage(fmt: FmtChunk, format: string, frames: Uint8Array): Float32Array[] {
  const header = new ArrayBuffer(44 + frames.length);
  const dv = new DataView(header);
  const bytes = new Uint8Array(header);
  const ascii = (o: number, s: string): void => {
    for (let i = 0; i < 4; i++) bytes[o + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  dv.setUint32(4, 36 + frames.length, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, format.startsWith('float') ? WAVE_FORMAT_IEEE_FLOAT : WAVE_FORMAT_PCM, true);
  dv.setUint16(22, fmt.channelCount, true);
  dv.setUint32(24, fmt.sampleRateHz, true);
  dv.setUint32(28, fmt.sampleRateHz * fmt.blockAlign, true);
  dv.setUint16(32, fmt.blockAlign, true);
  dv.setUint16(34, fmt.bitsPerSample, true);
  ascii(36, 'data');
  dv.setUint32(40, frames.length, true);
  bytes.set(frames, 44);
  try {
    return wavDecoder.decode.sync(header, { symmetric: true }).channelData;
  } catch (err) {
    throw new AudioFormatError(
      `cannot decode ${format} samples: ${err instanceof Error ? err.message : String(err)}`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

/** Decode the interleaved frames ourselves (8-bit PCM, 24-bit PCM, G.711). */
function decodeOwn(fmt: FmtChunk, format: string, frames: Uint8Array, frameCount: number): Float32Array[] {
  const ch = fmt.channelCount;
  const bytesPerSample = fmt.bitsPerSample / 8;
  const out: Float32Array[] = [];
  for (let c = 0; c < ch; c++) out.push(new Float32Array(frameCount));
  for (let i = 0; i < frameCount; i++) {
    const frameBase = i * fmt.blockAlign;
    for (let c = 0; c < ch; c++) {
      const o = frameBase + c * bytesPerSample;
      let v: number;
      switch (format) {
        case 'pcm8':
          v = (frames[o] - 128) / 128;
          break;
        case 'pcm24': {
          const u = frames[o] | (frames[o + 1] << 8) | (frames[o + 2] << 16);
          v = ((u << 8) >> 8) / 8388608;
          break;
        }
        case 'mulaw':
          v = muLawToLinear(frames[o]) / 32768;
          break;
        default: // 'alaw'
          v = aLawToLinear(frames[o]) / 32768;
      }
      out[c][i] = v;
    }
  }
  return out;
}

export function decodeWav(data: Uint8Array, opts: DecodeWavOptions = {}): DecodedAudio {
  if (!(data instanceof Uint8Array)) throw new AudioFormatError('input is not a byte array');
  if (data.length < 12) throw new AudioFormatError(`truncated header (${data.length} bytes, not a WAV file)`);
  const riff = fourcc(data, 0);
  if (riff === 'RF64' || riff === 'BW64')
    throw new AudioFormatError(`unsupported container ${riff} (64-bit WAV)`);
  if (riff !== 'RIFF' || fourcc(data, 8) !== 'WAVE')
    throw new AudioFormatError('not a WAV file (no RIFF/WAVE header)');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);

  let fmt: FmtChunk | undefined;
  let dataStart = -1;
  let dataSize = 0;
  let offset = 12;
  while (offset + 8 <= data.length) {
    const id = fourcc(data, offset);
    const size = dv.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (body + Math.min(size, 40) > data.length) throw new AudioFormatError('truncated fmt chunk');
      fmt = parseFmt(dv, body, size);
    } else if (id === 'data') {
      dataStart = body;
      // 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back; a size
      // beyond the end means a truncated file. In all three cases take what is there.
      const remaining = data.length - body;
      dataSize = size === 0 || size > remaining ? remaining : size;
      if (fmt) break;
    }
    // Chunks are word-aligned: odd sizes are followed by a pad byte.
    offset = body + size + (size & 1);
  }
  if (!fmt)
    throw new AudioFormatError(
      dataStart < 0 && offset === 12 ? 'truncated header (no chunks)' : 'no fmt chunk',
    );
  if (dataStart < 0) throw new AudioFormatError('no data chunk');

  const format = formatName(fmt);
  if (fmt.channelCount === 0) throw new AudioFormatError('channel count is 0');
  if (fmt.sampleRateHz === 0) throw new AudioFormatError('sample rate is 0');
  const minBlock = (fmt.channelCount * fmt.bitsPerSample) / 8;
  if (fmt.blockAlign < minBlock) {
    throw new AudioFormatError(
      `block align ${fmt.blockAlign} too small for ${fmt.channelCount} × ${fmt.bitsPerSample}-bit samples`,
    );
  }
  const channel = opts.channel ?? 0;
  if (channel !== 'mix' && (!Number.isInteger(channel) || channel < 0 || channel >= fmt.channelCount)) {
    throw new AudioFormatError(`channel ${String(channel)} does not exist (file has ${fmt.channelCount})`);
  }

  const frameCount = Math.floor(dataSize / fmt.blockAlign);
  const frames = data.subarray(dataStart, dataStart + frameCount * fmt.blockAlign);
  const usePackage =
    (format === 'pcm16' || format === 'pcm32' || format === 'float32' || format === 'float64') &&
    fmt.blockAlign === minBlock;
  const channels = usePackage
    ? decodeWithPackage(fmt, format, frames)
    : decodeOwn(fmt, format, frames, frameCount);

  let samples: Float32Array;
  if (channel === 'mix') {
    samples = new Float32Array(frameCount);
    for (const c of channels) for (let i = 0; i < frameCount; i++) samples[i] += c[i];
    if (channels.length > 1) for (let i = 0; i < frameCount; i++) samples[i] /= channels.length;
  } else {
    samples = channels[channel];
  }
  // Float files may hold NaN/Inf; they would poison every filter downstream.
  if (format.startsWith('float')) {
    for (let i = 0; i < samples.length; i++) if (!Number.isFinite(samples[i])) samples[i] = 0;
  }
  return {
    sampleRateHz: fmt.sampleRateHz,
    channelCount: fmt.channelCount,
    format,
    samples,
    durationMs: (frameCount / fmt.sampleRateHz) * 1000,
  };
}

/** 16-bit PCM mono WAV. Float input is in [-1, 1] (clipped); Int16Array input is written as is. */
export function encodeWav16(samples: Float32Array | Int16Array, sampleRateHz: number): Uint8Array {
  if (!Number.isInteger(sampleRateHz) || sampleRateHz <= 0)
    throw new RangeError(`sampleRateHz must be a positive integer, got ${sampleRateHz}`);
  const n = samples.length;
  const out = new Uint8Array(44 + n * 2);
  const dv = new DataView(out.buffer);
  const ascii = (o: number, s: string): void => {
    for (let i = 0; i < 4; i++) out[o + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  dv.setUint32(4, 36 + n * 2, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, WAVE_FORMAT_PCM, true);
  dv.setUint16(22, 1, true);
  dv.setUint32(24, sampleRateHz, true);
  dv.setUint32(28, sampleRateHz * 2, true);
  dv.setUint16(32, 2, true);
  dv.setUint16(34, 16, true);
  ascii(36, 'data');
  dv.setUint32(40, n * 2, true);
  if (samples instanceof Int16Array) {
    for (let i = 0; i < n; i++) dv.setInt16(44 + i * 2, samples[i], true);
  } else {
    for (let i = 0; i < n; i++) {
      const v = Math.round(samples[i] * 32768);
      dv.setInt16(44 + i * 2, v > 32767 ? 32767 : v < -32768 ? -32768 : Number.isNaN(v) ? 0 : v, true);
    }
  }
  return out;
}
