/**
 * File-level entry to the audio front: read a WAV file into one channel of float samples, and
 * bring any audio to the detector's 8 kHz. Errors are AudioFormatError naming the file.
 */
import { readFile } from 'node:fs/promises';
import { AudioFormatError } from './audio-format-error.js';
import { resample } from './resampler.js';
import { decodeWav, type DecodeWavOptions, type DecodedAudio } from './wav.js';

/** The bytes of an input file (WAV or capture); a read failure is an AudioFormatError naming it. */
export async function readInputFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AudioFormatError(`cannot read file${code ? ` (${code})` : ''}`, path, { cause: err });
  }
}

export async function loadAudioFile(path: string, opts: DecodeWavOptions = {}): Promise<DecodedAudio> {
  const data = await readInputFile(path);
  try {
    return decodeWav(data, opts);
  } catch (err) {
    if (err instanceof AudioFormatError) throw err.withFile(path);
    throw new AudioFormatError(`cannot decode: ${err instanceof Error ? err.message : String(err)}`, path, {
      cause: err,
    });
  }
}

export const DETECTOR_RATE_HZ = 8000;

export function to8k(audio: DecodedAudio): Float32Array {
  return resample(audio.samples, audio.sampleRateHz, DETECTOR_RATE_HZ);
}
