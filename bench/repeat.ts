import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { validateConfig } from '../src/config/load-config.js';
import { silentLogger } from '../src/log.js';
import { Store } from '../src/store/store.js';
import { bitErrorRate, fingerprint, fingerprintFrames } from '../src/audio/audio-fingerprint.js';
import { decodeG711ToFloat, encodeG711FromFloat } from '../src/audio/g711.js';
import { RepeatIndex } from '../src/detect/repeat-index.js';

/**
 * The repeated-audio check (detector.repeat) at its default size, against a baseline in the same run:
 *
 *  - fingerprint: the cost of one call's 4 s of caller audio (once per call, on the main thread);
 *  - match: matchAndRemember against CALLS remembered calls (the per-call cost), versus the
 *    baseline, comparing the call with every remembered call at every offset within ±2 s;
 *  - memory: heap and array buffers per remembered call, the index's preallocated tables included;
 *  - found / false: replays of remembered calls (other gain, start, G.711 law) found, and
 *    matches among calls that repeat nothing;
 *  - restart (detector.repeat.persist): the store's cost per written fingerprint and on disk, the
 *    time to load the remembered calls into a new index, and the replays that index still finds,
 *    against a restart without the store (an empty index).
 *
 * The calls are pseudo-speech (see pseudoSpeech): speech-like bits, and no two calls the same audio.
 * Real recordings are the unit tests' part (test/audio/audio-fingerprint.test.ts).
 */
const CALLS = Number(process.env.VG_BENCH_CALLS ?? 5000);
const LISTEN_S = 4;
const QUERIES = Number(process.env.VG_BENCH_QUERIES ?? 200);

export interface RepeatBenchResult {
  calls: number;
  fingerprintMsPerCall: number;
  match: { medianMs: number; p99Ms: number; baselineBruteForceMs: number };
  bytesPerRememberedCall: number;
  replaysFound: number;
  replays: number;
  falseMatches: number;
  freshQueries: number;
  restart: {
    writeMsPerCall: number;
    diskBytesPerCall: number;
    loadMs: number;
    replaysFoundAfter: number;
    replaysFoundWithoutStore: number;
    replays: number;
  };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/**
 * `n` samples of pseudo-speech, new audio on every call: syllables of 120-320 ms (a glottal pulse
 * train at a drifting F0 of 80-260 Hz, or noise for unvoiced ones) through three formant
 * resonators at random F1-F3, with a syllable envelope and pauses. Its fingerprint bits have
 * speech's structure, and no two calls share audio, so any match among them is a false one.
 */
function pseudoSpeech(rnd: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  let i = 0;
  while (i < n) {
    i += Math.floor(rnd() * 800); // pause 0-100 ms
    const len = Math.floor(960 + rnd() * 1600);
    const voiced = rnd() < 0.75;
    let f0 = 80 + rnd() * 180;
    const df0 = (rnd() - 0.5) * 0.6; // F0 moves by up to ±30% through the syllable
    // Formants glide from one target to the next through the syllable, as in speech.
    const formants = [
      [300, 600],
      [900, 1600],
      [2500, 1000],
    ].map(([lo, span]) => {
      const from = lo! + rnd() * span!;
      const to = lo! + rnd() * span!;
      return { from, to, r: Math.exp((-Math.PI * (60 + rnd() * 120)) / 8000), y1: 0, y2: 0 };
    });
    const gain = 0.05 + rnd() * 0.3;
    let phase = 0;
    for (let k = 0; k < len && i < n; k++, i++) {
      f0 *= 1 + df0 / len;
      phase += f0 / 8000;
      let x = voiced ? (phase >= 1 ? 1 : 0) : rnd() - 0.5;
      if (phase >= 1) phase -= 1;
      for (const f of formants) {
        const hz = f.from + ((f.to - f.from) * k) / len;
        const a1 = 2 * f.r * Math.cos((2 * Math.PI * hz) / 8000);
        const a2 = -f.r * f.r;
        const y = x + a1 * f.y1 + a2 * f.y2;
        f.y2 = f.y1;
        f.y1 = y;
        x = y * (1 - a1 * 0.5 - a2 * 0.5) * 0.5;
      }
      out[i] = x * gain * Math.sin((Math.PI * k) / len);
    }
  }
  let peak = 0;
  for (const v of out) peak = Math.max(peak, Math.abs(v));
  if (peak > 0) for (let k = 0; k < n; k++) out[k] = (out[k]! / peak) * 0.5;
  return out;
}

function line(pcm: Float32Array, gain: number, lead: number, law: 'pcmu' | 'pcma'): Float32Array {
  const out = new Float32Array(lead + pcm.length);
  for (let i = 0; i < pcm.length; i++) out[lead + i] = pcm[i]! * gain;
  return decodeG711ToFloat(law, encodeG711FromFloat(law, out)).subarray(0, pcm.length);
}

export async function runRepeatBench(): Promise<RepeatBenchResult> {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const n = LISTEN_S * 8000;
  const makeCall = (): Float32Array => pseudoSpeech(rnd, n);
  // Memory is measured from before the index exists: its tables count.
  globalThis.gc?.();
  const mem0 = process.memoryUsage();
  const index = new RepeatIndex({
    maxCalls: CALLS,
    windowMs: 86_400_000,
    maxFrames: fingerprintFrames(n),
    maxBitErrorRate: 0.3,
    minOverlapFrames: 125,
  });
  // The seed state before each call whose replay is queried later (its audio is made again then:
  // keeping it would count in the memory figure).
  const replaySeeds: number[] = [];
  const fpTimes: number[] = [];
  for (let c = 0; c < CALLS; c++) {
    if (c % Math.max(1, Math.floor(CALLS / QUERIES)) === 0) replaySeeds.push(seed);
    const pcm = makeCall();
    const t0 = performance.now();
    const fp = fingerprint(pcm);
    fpTimes.push(performance.now() - t0);
    index.matchAndRemember({ callId: `c${c}`, callerKey: `p${c}`, atMs: c, fingerprint: fp });
  }
  globalThis.gc?.();
  const mem1 = process.memoryUsage();
  const bytes = mem1.heapUsed + mem1.arrayBuffers - (mem0.heapUsed + mem0.arrayBuffers);

  // Queries: replays of remembered calls (found?) and fresh calls (false matches?), timed.
  const matchTimes: number[] = [];
  let found = 0;
  let falseMatches = 0;
  let replays = 0;
  for (let q = 0; q < QUERIES; q++) {
    const replay = q % 2 === 0;
    let pcm: Float32Array;
    if (replay) {
      const kept = seed;
      seed = replaySeeds[(q / 2) % replaySeeds.length]!;
      const original = makeCall();
      seed = kept;
      pcm = line(original, 0.3 + rnd(), Math.floor(rnd() * 4000), rnd() < 0.5 ? 'pcmu' : 'pcma');
      replays++;
    } else pcm = makeCall();
    const fp = fingerprint(pcm);
    const t0 = performance.now();
    const m = index.matchAndRemember({
      callId: `q${q}`,
      callerKey: `q${q}`,
      atMs: CALLS + q,
      fingerprint: fp,
    });
    matchTimes.push(performance.now() - t0);
    if (replay && m.length > 0) found++;
    if (!replay) falseMatches += m.length;
  }

  // Baseline: the same question by brute force, every remembered call at every offset within ±2 s.
  // The remembered calls are made again from the same seed (keeping them all above would have
  // counted them in the memory figure); the probe replays the first of them.
  seed = 12345;
  const probe = fingerprint(line(makeCall(), 0.7, 1234, 'pcma'));
  seed = 12345;
  const all = Array.from({ length: CALLS }, () => fingerprint(makeCall()));
  const t0 = performance.now();
  let hits = 0;
  for (const fp of all) {
    for (let d = -250; d <= 250; d++) {
      const r = bitErrorRate(probe, fp, d);
      if (r.frames >= 125 && r.rate <= 0.3) {
        hits++;
        break;
      }
    }
  }
  const bruteMs = performance.now() - t0;
  if (hits < 1) throw new Error('baseline missed the replay it was given');

  // A restart: the same remembered calls written through the store, read into a new index.
  const restart = await restartBench(all, replaySeeds, () => {
    const kept = seed;
    return (replaySeed: number) => {
      seed = replaySeed;
      const original = makeCall();
      seed = kept;
      return line(original, 0.5, 800, 'pcma');
    };
  });

  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    restart: {
      ...restart,
      writeMsPerCall: r3(restart.writeMsPerCall),
      loadMs: Math.round(restart.loadMs),
    },
    calls: CALLS,
    fingerprintMsPerCall: r3(percentile(fpTimes, 50)),
    match: {
      medianMs: r3(percentile(matchTimes, 50)),
      p99Ms: r3(percentile(matchTimes, 99)),
      baselineBruteForceMs: r3(bruteMs),
    },
    bytesPerRememberedCall: Math.round(bytes / CALLS),
    replaysFound: found,
    replays,
    falseMatches,
    freshQueries: QUERIES - replays,
  };
}

/** Writes `fingerprints` through a new store, reloads them into a new index and queries replays. */
async function restartBench(
  fingerprints: ReturnType<typeof fingerprint>[],
  replaySeeds: number[],
  replayMaker: () => (seed: number) => Float32Array,
): Promise<RepeatBenchResult['restart']> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-bench-repeat-'));
  const cfg = validateConfig({ store: { path: join(dir, 'vg.sqlite') } });
  const opts = {
    maxCalls: fingerprints.length,
    windowMs: 86_400_000,
    maxFrames: fingerprintFrames(LISTEN_S * 8000),
    maxBitErrorRate: 0.3,
    minOverlapFrames: 125,
  };
  const keep = { sinceMs: -1, calls: fingerprints.length };
  try {
    const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    const tw = performance.now();
    // As the gateway does: one queued write per call, flushed in batches (every 250 ms there).
    fingerprints.forEach((fp, c) => {
      store.saveFingerprint({ callId: `c${c}`, callerKey: `p${c}`, atMs: c, fingerprint: fp }, keep);
      if (c % 50 === 49) store.flush();
    });
    store.flush();
    const writeMs = performance.now() - tw;
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    const fileBytes = statSync(join(dir, 'vg.sqlite')).size;
    await store.close(); // with its checkpoint worker, before the file is opened again

    const reopened = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    const tl = performance.now();
    const index = new RepeatIndex(opts);
    index.restore(reopened.recentFingerprints(0, fingerprints.length));
    const loadMs = performance.now() - tl;
    await reopened.close(); // and before the directory is removed

    const empty = new RepeatIndex(opts);
    const replay = replayMaker();
    let found = 0;
    let foundEmpty = 0;
    replaySeeds.forEach((s, q) => {
      const fp = fingerprint(replay(s));
      const entry = { callId: `r${q}`, callerKey: `r${q}`, atMs: fingerprints.length + q, fingerprint: fp };
      if (index.matchAndRemember(entry).length > 0) found++;
      if (empty.matchAndRemember(entry).length > 0) foundEmpty++;
    });
    return {
      writeMsPerCall: writeMs / fingerprints.length,
      diskBytesPerCall: Math.round(fileBytes / fingerprints.length),
      loadMs,
      replaysFoundAfter: found,
      replaysFoundWithoutStore: foundEmpty,
      replays: replaySeeds.length,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await runRepeatBench();
  console.log(JSON.stringify(r));
  console.log(
    [
      `repeated-audio bench, ${r.calls} remembered calls of ${LISTEN_S} s`,
      `  fingerprint one call              ${r.fingerprintMsPerCall} ms (median)`,
      `  match + remember (index)          ${r.match.medianMs} ms median, ${r.match.p99Ms} ms p99`,
      `  baseline: brute force, ±2 s        ${r.match.baselineBruteForceMs} ms for one call`,
      `  memory per remembered call        ${r.bytesPerRememberedCall} bytes (heap + array buffers)`,
      `  replays found                     ${r.replaysFound} of ${r.replays} (other gain, start, G.711 law)`,
      `  matches among fresh calls         ${r.falseMatches} in ${r.freshQueries} queries`,
      `restart with the store (detector.repeat.persist), the same ${r.calls} calls`,
      `  write one fingerprint             ${r.restart.writeMsPerCall} ms (queued, flushed in batches of 50)`,
      `  on disk                           ${r.restart.diskBytesPerCall} bytes per call`,
      `  load into a new index             ${r.restart.loadMs} ms`,
      `  replays found after the restart   ${r.restart.replaysFoundAfter} of ${r.restart.replays}; without the store ${r.restart.replaysFoundWithoutStore}`,
    ].join('\n'),
  );
}
