import { powerSpectrum512, SPECTRUM_FFT_SIZE } from '../audio/spectrum.js';

/**
 * Voice-activity gate for 8 kHz PCM. Only speech may count as evidence for the detector:
 * silence, ringback, busy/SIT tones and DTMF digits would otherwise feed windows that the
 * model was never trained on and push the verdict either way.
 *
 * Each 40 ms frame is classified from its level and the spectrum of the 64 ms ending with it:
 *  - quieter than `energyThresholdDbfs`                → silence;
 *  - one pure sine (any frequency: fax/modem/SIT tones), or most energy in narrow peaks at the
 *    DTMF and call-progress frequencies (ringback 425 / 440+480 / 400+450 Hz, busy, dial) → tone;
 *  - flat spectrum (spectral flatness near white noise) → noise;
 *  - otherwise a voiced frame.
 * Voiced frames become speech once `minSpeechMs` of them gather without a gap longer than
 * `hangoverMs`; a speech run then ends `hangoverMs` after its last voiced frame, so the short
 * unvoiced consonants inside words stay in.
 *
 * Pure and synchronous: samples in, speech segments out, with their position in the stream.
 */

export const VAD_SAMPLE_RATE_HZ = 8000;
export const VAD_FRAME_SAMPLES = 320; // 40 ms
/**
 * The spectrum is taken over the last 64 ms (512 samples, 15.6 Hz bins), not just the frame:
 * at 20-40 ms a voiced vowel's harmonics smear into one blob that looks as "peaky" as a
 * tone, while over 64 ms a steady tone stays one or two main lobes and speech spreads out.
 */
const FFT_SIZE = SPECTRUM_FFT_SIZE;
const HALF = FFT_SIZE / 2;
/** Analysed band: ~94 Hz to ~3.78 kHz (telephone band). */
const BAND_LO = 6;
const BAND_HI = 242;
/** Half-width of a spectral peak in bins (Hann main lobe is ±2 bins). */
const PEAK_HALF_WIDTH = 2;

export interface VadOptions {
  /** Frames whose RMS level is below this (dB re full scale, 0 dBFS = RMS 1.0) are silence. */
  energyThresholdDbfs: number;
  /** Voiced time a run needs before it is released as speech. */
  minSpeechMs: number;
  /** Time kept as speech after the last voiced frame. */
  hangoverMs: number;
  /** Share of band energy in peaks at signalling-tone frequencies above which a frame is a tone. */
  toneConcentration?: number;
  /** Share of band energy in one peak above which a frame is a pure tone, whatever its frequency. */
  pureToneShare?: number;
  /** Spectral flatness above which a frame is noise (white noise ≈ 0.56, voiced speech ≲ 0.3). */
  noiseFlatness?: number;
}

export const DEFAULT_VAD_OPTIONS: Required<VadOptions> = {
  energyThresholdDbfs: -45,
  minSpeechMs: 200,
  hangoverMs: 200,
  toneConcentration: 0.8,
  pureToneShare: 0.97,
  noiseFlatness: 0.4,
};

export type FrameClass = 'silence' | 'tone' | 'noise' | 'voiced';

export interface FrameFeatures {
  energyDbfs: number;
  /** Geometric over arithmetic mean of the in-band power spectrum (0..1). */
  flatness: number;
  /** Frequencies of the two strongest spectral peaks (Hz; 0 when absent). */
  peakHz: [number, number];
  /** Share of in-band energy in each of those peaks (0..1). */
  peakShare: [number, number];
  /** Share of in-band energy in the strongest peaks that sit at signalling-tone frequencies (0..1). */
  signallingShare: number;
}

/**
 * Signalling tones a caller's line carries: DTMF (ITU-T Q.23) and the call-progress tones of
 * ITU-T E.180 (dial, ringback, busy in their common national variants). A frame whose energy
 * sits in two of these is a tone; a frame that is one pure sine of any frequency is a tone too.
 */
export const SIGNALLING_TONES_HZ: readonly number[] = [
  697, 770, 852, 941, 1209, 1336, 1477, 1633, 350, 400, 425, 440, 450, 480, 620,
];
const TONE_MATCH_HZ = 20;

/** A run of speech samples; `startSample` is its position in the stream (samples since start). */
export interface SpeechSegment {
  startSample: number;
  samples: Float32Array;
}

// ---- spectrum --------------------------------------------------------------------------

const power = new Float64Array(HALF + 1);

/**
 * Features of the frame starting at `offset`; the spectral ones look at the 64 ms
 * ending with that frame (as much of it as `samples` holds).
 */
export function frameFeatures(samples: Float32Array, offset = 0): FrameFeatures {
  const energyDbfs = frameEnergyDbfs(samples, offset);
  if (energyDbfs < -90)
    return { energyDbfs, flatness: 1, peakHz: [0, 0], peakShare: [0, 0], signallingShare: 0 };
  powerSpectrum512(samples, offset + VAD_FRAME_SAMPLES, power);
  let total = 0;
  let logSum = 0;
  let product = 1;
  let k1 = BAND_LO;
  for (let k = BAND_LO; k <= BAND_HI; k++) {
    const p = power[k] + 1e-18;
    total += p;
    // Logs of products of 8 (within double range for any level): 8x fewer Math.log calls.
    product *= p;
    if ((k - BAND_LO) % 8 === 7) {
      logSum += Math.log(product);
      product = 1;
    }
    if (power[k] > power[k1]) k1 = k;
  }
  logSum += Math.log(product);
  const n = BAND_HI - BAND_LO + 1;
  const flatness = Math.exp(logSum / n) / (total / n);
  const e1 = peakEnergy(k1);
  let k2 = -1;
  for (let k = BAND_LO; k <= BAND_HI; k++) {
    if (Math.abs(k - k1) <= PEAK_HALF_WIDTH) continue;
    if (k2 < 0 || power[k] > power[k2]) k2 = k;
  }
  const e2 = k2 < 0 ? 0 : peakEnergy(k2);
  return {
    energyDbfs,
    flatness,
    peakHz: [peakFrequencyHz(k1), k2 < 0 ? 0 : peakFrequencyHz(k2)],
    peakShare: [e1 / total, e2 / total],
    signallingShare: signallingShare(total),
  };
}

/**
 * Share of in-band energy in the strongest peaks, taken strongest first while they sit at
 * signalling-tone frequencies (up to four: a 64 ms analysis can straddle two DTMF digits).
 * Destroys `power`, so it runs last.
 */
function signallingShare(total: number): number {
  let share = 0;
  for (let n = 0; n < 4; n++) {
    let k1 = BAND_LO;
    for (let k = BAND_LO; k <= BAND_HI; k++) if (power[k] > power[k1]) k1 = k;
    if (!isSignallingTone(peakFrequencyHz(k1))) break;
    share += peakEnergy(k1) / total;
    for (let k = Math.max(BAND_LO, k1 - PEAK_HALF_WIDTH); k <= Math.min(BAND_HI, k1 + PEAK_HALF_WIDTH); k++)
      power[k] = 0;
  }
  return share;
}

/** Peak frequency refined by parabolic interpolation over the log power of the 3 bins around it. */
function peakFrequencyHz(k: number): number {
  const a = Math.log(power[k - 1] + 1e-18);
  const b = Math.log(power[k] + 1e-18);
  const c = Math.log(power[k + 1] + 1e-18);
  const denom = a - 2 * b + c;
  const delta = denom < 0 ? (0.5 * (a - c)) / denom : 0;
  return ((k + Math.max(-0.5, Math.min(0.5, delta))) * VAD_SAMPLE_RATE_HZ) / FFT_SIZE;
}

function isSignallingTone(hz: number): boolean {
  for (const f of SIGNALLING_TONES_HZ) if (Math.abs(hz - f) <= TONE_MATCH_HZ) return true;
  return false;
}

/** RMS level of the frame at `offset`, in dB re full scale (RMS 1.0 = 0 dBFS). */
export function frameEnergyDbfs(samples: Float32Array, offset: number): number {
  let sq = 0;
  for (let i = 0; i < VAD_FRAME_SAMPLES; i++) {
    const s = samples[offset + i];
    sq += s * s;
  }
  return 10 * Math.log10(Math.max(sq / VAD_FRAME_SAMPLES, 1e-20));
}

function peakEnergy(center: number): number {
  let e = 0;
  for (
    let k = Math.max(BAND_LO, center - PEAK_HALF_WIDTH);
    k <= Math.min(BAND_HI, center + PEAK_HALF_WIDTH);
    k++
  )
    e += power[k];
  return e;
}

export function classifyFrame(f: FrameFeatures, opts: Required<VadOptions>): FrameClass {
  if (f.energyDbfs < opts.energyThresholdDbfs) return 'silence';
  const [s1, s2] = f.peakShare;
  if (s1 >= opts.pureToneShare) return 'tone';
  if (
    s1 + s2 >= opts.toneConcentration &&
    isSignallingTone(f.peakHz[0]) &&
    (s2 < 0.05 || isSignallingTone(f.peakHz[1]))
  ) {
    return 'tone';
  }
  if (f.flatness >= opts.noiseFlatness) return 'noise';
  return 'voiced';
}

// ---- streaming gate ----------------------------------------------------------------------

/**
 * Streaming gate: `process()` takes any chunk size and returns the speech segments that became
 * certain with this chunk. Latency: two frames, plus up to `minSpeechMs` while a run is confirmed.
 */
export class VoiceActivityGate {
  private readonly opts: Required<VadOptions>;
  private readonly minVoicedFrames: number;
  private readonly hangoverFrames: number;
  private readonly maxPendingFrames: number;
  /** Partial frame carried to the next chunk. */
  private readonly partial = new Float32Array(VAD_FRAME_SAMPLES);
  /** The newest frame, classified but not yet decided (see frame()). */
  private held: { frame: Float32Array; start: number; cls: FrameClass } | null = null;
  /** The last 64 ms, for the spectral features. */
  private readonly history = new Float32Array(FFT_SIZE);
  private partialLen = 0;
  /** Samples consumed so far (stream position of the next sample into `partial`). */
  private streamPos = 0;
  private state: 'idle' | 'candidate' | 'speech' = 'idle';
  /** Frames held while a candidate run is being confirmed (and their start positions). */
  private pending: Float32Array[] = [];
  private pendingStart = 0;
  private voicedInRun = 0;
  private framesSinceVoiced = 0;
  /** Frames classified (for statistics and plots). */
  frames = 0;
  speechFrames = 0;

  constructor(opts: Partial<VadOptions> = {}) {
    this.opts = { ...DEFAULT_VAD_OPTIONS, ...definedOnly(opts) };
    const frameMs = (VAD_FRAME_SAMPLES * 1000) / VAD_SAMPLE_RATE_HZ;
    this.minVoicedFrames = Math.max(1, Math.ceil(this.opts.minSpeechMs / frameMs));
    this.hangoverFrames = Math.max(0, Math.round(this.opts.hangoverMs / frameMs));
    // A run that stays unconfirmed this long is noise with occasional voiced frames.
    this.maxPendingFrames = Math.max(this.minVoicedFrames * 4, 50);
  }

  /** Feeds samples; returns the speech segments released by them (possibly none). */
  process(samples: Float32Array): SpeechSegment[] {
    const out: SpeechSegment[] = [];
    let i = 0;
    if (this.partialLen > 0) {
      const take = Math.min(VAD_FRAME_SAMPLES - this.partialLen, samples.length);
      this.partial.set(samples.subarray(0, take), this.partialLen);
      this.partialLen += take;
      i = take;
      if (this.partialLen === VAD_FRAME_SAMPLES) {
        this.frame(this.partial.slice(), out);
        this.partialLen = 0;
      }
    }
    for (; i + VAD_FRAME_SAMPLES <= samples.length; i += VAD_FRAME_SAMPLES) {
      this.frame(samples.subarray(i, i + VAD_FRAME_SAMPLES), out);
    }
    if (i < samples.length) {
      this.partial.set(samples.subarray(i), 0);
      this.partialLen = samples.length - i;
    }
    return mergeSegments(out);
  }

  /** End of stream: nothing more is released (an unconfirmed run is not speech). */
  reset(): void {
    this.pending = [];
    this.partialLen = 0;
    this.history.fill(0);
    this.held = null;
    this.state = 'idle';
    this.voicedInRun = 0;
    this.framesSinceVoiced = 0;
  }

  /**
   * Classifies a frame, then decides the one before it: a tone's first frame shares its 64 ms
   * analysis span with the silence before it, which smears the tone's peaks so it can look
   * voiced; a "voiced" frame directly followed by a tone frame is that onset.
   */
  private frame(frame: Float32Array, out: SpeechSegment[]): void {
    const start = this.streamPos;
    this.streamPos += VAD_FRAME_SAMPLES;
    this.frames++;
    this.history.copyWithin(0, VAD_FRAME_SAMPLES);
    this.history.set(frame, FFT_SIZE - VAD_FRAME_SAMPLES);
    // The spectrum is only worth computing for frames loud enough to be speech.
    const cls: FrameClass =
      frameEnergyDbfs(frame, 0) < this.opts.energyThresholdDbfs
        ? 'silence'
        : classifyFrame(frameFeatures(this.history, FFT_SIZE - VAD_FRAME_SAMPLES), this.opts);
    const held = this.held;
    this.held = { frame: frame.slice(), start, cls };
    if (held) this.decide(held.frame, held.start, held.cls === 'voiced' && cls !== 'tone', out);
  }

  private decide(frame: Float32Array, start: number, voiced: boolean, out: SpeechSegment[]): void {
    switch (this.state) {
      case 'idle':
        if (!voiced) return;
        this.state = 'candidate';
        this.pending = [frame];
        this.pendingStart = start;
        this.voicedInRun = 1;
        this.framesSinceVoiced = 0;
        break;
      case 'candidate':
        if (voiced) {
          this.voicedInRun++;
          this.framesSinceVoiced = 0;
        } else if (++this.framesSinceVoiced > this.hangoverFrames) {
          this.state = 'idle';
          this.pending = [];
          return;
        }
        this.pending.push(frame);
        if (this.pending.length > this.maxPendingFrames) {
          this.pending.shift();
          this.pendingStart += VAD_FRAME_SAMPLES;
        }
        break;
      case 'speech':
        if (voiced) this.framesSinceVoiced = 0;
        else if (++this.framesSinceVoiced > this.hangoverFrames) {
          this.state = 'idle';
          return;
        }
        this.speechFrames++;
        out.push({ startSample: start, samples: frame });
        return;
    }
    if (this.state === 'candidate' && this.voicedInRun >= this.minVoicedFrames) {
      // Confirmed: the whole held run, short gaps included, is speech.
      this.state = 'speech';
      const all = concat(this.pending);
      this.speechFrames += this.pending.length;
      out.push({ startSample: this.pendingStart, samples: all });
      this.pending = [];
    }
  }
}

function concat(frames: Float32Array[]): Float32Array {
  const out = new Float32Array(frames.length * VAD_FRAME_SAMPLES);
  for (let i = 0; i < frames.length; i++) out.set(frames[i], i * VAD_FRAME_SAMPLES);
  return out;
}

/** Joins segments that touch. Every segment already owns its samples (frames are copied when held). */
function mergeSegments(segs: SpeechSegment[]): SpeechSegment[] {
  if (segs.length <= 1) return segs;
  const out: SpeechSegment[] = [];
  let runStart = 0;
  for (let i = 1; i <= segs.length; i++) {
    const prev = segs[i - 1];
    const contiguous = i < segs.length && segs[i].startSample === prev.startSample + prev.samples.length;
    if (contiguous) continue;
    const group = segs.slice(runStart, i);
    const len = group.reduce((n, s) => n + s.samples.length, 0);
    const samples = new Float32Array(len);
    let o = 0;
    for (const s of group) {
      samples.set(s.samples, o);
      o += s.samples.length;
    }
    out.push({ startSample: group[0].startSample, samples });
    runStart = i;
  }
  return out;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Speech regions of a whole signal in ms (for plots and offline analysis). */
export function speechRegions(
  samples: Float32Array,
  opts: Partial<VadOptions> = {},
): Array<{ startMs: number; endMs: number }> {
  const gate = new VoiceActivityGate(opts);
  const regions: Array<{ startMs: number; endMs: number }> = [];
  for (const seg of gate.process(samples)) {
    const startMs = (seg.startSample * 1000) / VAD_SAMPLE_RATE_HZ;
    const endMs = ((seg.startSample + seg.samples.length) * 1000) / VAD_SAMPLE_RATE_HZ;
    const last = regions[regions.length - 1];
    if (last && last.endMs >= startMs) last.endMs = Math.max(last.endMs, endMs);
    else regions.push({ startMs, endMs });
  }
  return regions;
}
