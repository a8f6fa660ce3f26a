import {
  bitErrorRate,
  FINGERPRINT_HOP_SAMPLES,
  FINGERPRINT_SAMPLE_RATE_HZ,
  type AudioFingerprint,
} from '../audio/audio-fingerprint.js';

/**
 * Recent calls' audio fingerprints, and which of them a new call's audio repeats.
 *
 * A robot campaign plays the same recording, or the same TTS output, to thousands of people from
 * rotating caller IDs. Whatever the detector makes of the voice, the same audio reaching several
 * callers' calls is a robot's mark: people never say anything twice the same way. The index finds
 * those repeats in a few milliseconds per call.
 *
 * How: every frame of a remembered call is filed under 20 of its 32 bits (bits 0-19 on even
 * frames, 12-31 on odd ones). A new call looks up both parts of each of its frames, and each hit
 * votes for (remembered call, time offset). Offsets with enough votes are checked on the whole
 * overlap (bit error rate, see audio-fingerprint.ts). Two plays of one recording differ in about
 * 10% of their bits, two different utterances in about 48%. With 20 bits a replay at a 10-15% bit
 * error rate still gets tens of votes, while a key is shared by about one remembered frame in a
 * full index, so a lookup stays cheap (with 16 bits the commonest keys held about a thousand entries).
 *
 * Memory: 12 MiB of tables, and 13 bytes per frame of `maxCalls` x `maxFrames` (8 for the chains,
 * allocated up front, and 5 for the fingerprint of a remembered frame).
 * Pure: no clock and no I/O; the time comes with each call.
 */

export interface RepeatIndexOptions {
  /** Calls remembered at most; the oldest is forgotten first. */
  maxCalls: number;
  /** Calls older than this are forgotten. */
  windowMs: number;
  /** Frames remembered per call (the first ones). */
  maxFrames: number;
  /** Highest bit error rate that still counts as the same audio. */
  maxBitErrorRate: number;
  /** Frames audible in both calls, at least, for a comparison to count. */
  minOverlapFrames: number;
}

export interface RepeatEntry {
  callId: string;
  /** Who called (a pseudonym): repeats by one caller are counted apart from repeats across callers. */
  callerKey: string;
  atMs: number;
  fingerprint: AudioFingerprint;
}

export interface RepeatMatch {
  callId: string;
  callerKey: string;
  atMs: number;
  bitErrorRate: number;
  /** Where the remembered call's audio sits in this call's (ms; positive = later here). */
  offsetMs: number;
}

export class RepeatIndexOptionsError extends RangeError {}

/**
 * Votes an (earlier call, offset) pair needs before its whole overlap is compared. A random hit
 * lands on one of millions of (call, offset) pairs, so three at one pair are no accident.
 */
const MIN_VOTES = 3;
/**
 * A key with more entries than this is a value too common to tell calls apart, and is skipped.
 * Speech makes some values common (a full index holds about one entry per key, the commonest keys
 * hundreds); a replay still gets its votes from the many frames with rare keys.
 */
const MAX_BUCKET_SCAN = 64;
const KEY_BITS = 21; // 20 bits of the word + which part it came from
const NO_ENTRY = -1;
/** The fingerprint of an erased call's tombstone. */
const EMPTY: AudioFingerprint = { bits: new Uint32Array(0), audible: new Uint8Array(0) };

interface Slot {
  callId: string;
  callerKey: string;
  atMs: number;
  /** Its frames are filed in the index as entries slot * maxFrames + frame. */
  fingerprint: AudioFingerprint;
}

function keyOf(word: number, frame: number): number {
  return frame & 1 ? (word >>> 12) | 0x100000 : word & 0xfffff;
}

export class RepeatIndex {
  private readonly slots: Array<Slot | null>;
  /** Ring order: the slot filled next, and how many are filled. */
  private next = 0;
  private filled = 0;
  private readonly head = new Int32Array(1 << KEY_BITS).fill(NO_ENTRY);
  private readonly bucketSize = new Uint16Array(1 << KEY_BITS);
  /** Chains of entries per key, both ways (forgetting a call unlinks its entries in O(1)). */
  private readonly link: Int32Array;
  private readonly prev: Int32Array;

  constructor(private readonly opts: RepeatIndexOptions) {
    const { maxCalls, windowMs, maxFrames, maxBitErrorRate, minOverlapFrames } = opts;
    if (!(Number.isInteger(maxCalls) && maxCalls >= 1))
      throw new RepeatIndexOptionsError(`maxCalls must be an integer >= 1 (got ${maxCalls})`);
    if (!(windowMs > 0)) throw new RepeatIndexOptionsError(`windowMs must be > 0 (got ${windowMs})`);
    if (!(Number.isInteger(maxFrames) && maxFrames >= 1 && maxCalls * maxFrames < 2 ** 31))
      throw new RepeatIndexOptionsError(
        `maxFrames must be an integer >= 1, and maxCalls x maxFrames < 2^31 (got ${maxFrames})`,
      );
    if (!(maxBitErrorRate > 0 && maxBitErrorRate < 0.5))
      throw new RepeatIndexOptionsError(`maxBitErrorRate must be in (0, 0.5) (got ${maxBitErrorRate})`);
    if (!(Number.isInteger(minOverlapFrames) && minOverlapFrames >= 1))
      throw new RepeatIndexOptionsError(`minOverlapFrames must be an integer >= 1 (got ${minOverlapFrames})`);
    this.slots = new Array<Slot | null>(maxCalls).fill(null);
    this.link = new Int32Array(maxCalls * maxFrames).fill(NO_ENTRY);
    this.prev = new Int32Array(maxCalls * maxFrames).fill(NO_ENTRY);
  }

  /** Calls remembered now. */
  get size(): number {
    return this.filled;
  }

  /**
   * The remembered calls, within `windowMs` before `entry.atMs`, whose audio this call's repeats;
   * then remembers this call (forgetting the oldest when full).
   */
  matchAndRemember(entry: RepeatEntry): RepeatMatch[] {
    this.forgetBefore(entry.atMs - this.opts.windowMs);
    const fp = clip(entry.fingerprint, this.opts.maxFrames);
    const matches = this.match(fp);
    this.remember({ ...entry, fingerprint: fp });
    return matches;
  }

  /**
   * Remembers calls without comparing them (a restart reloading stored fingerprints). Entries go
   * in time order, each forgetting what fell out of the window before it; what lies outside the
   * window before the newest entry, or beyond `maxCalls`, ends up forgotten as it would have been.
   */
  restore(entries: Iterable<RepeatEntry>): number {
    const sorted = [...entries].sort((a, b) => a.atMs - b.atMs);
    for (const entry of sorted) {
      this.forgetBefore(entry.atMs - this.opts.windowMs);
      this.remember({ ...entry, fingerprint: clip(entry.fingerprint, this.opts.maxFrames) });
    }
    return this.filled;
  }

  /**
   * Forgets the remembered calls with these ids (an erasure); returns how many were remembered.
   * Their slots stay in the ring as empty tombstones (no frames, no ids), so that the ring's age
   * order is kept; they are reused in turn.
   */
  forget(callIds: Iterable<string>): number {
    const ids = new Set(callIds);
    let n = 0;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s && s.callId !== '' && ids.has(s.callId)) {
        this.unlink(i);
        this.slots[i] = { callId: '', callerKey: '', atMs: s.atMs, fingerprint: EMPTY };
        n++;
      }
    }
    return n;
  }

  private match(fp: AudioFingerprint): RepeatMatch[] {
    const { maxFrames } = this.opts;
    const votes = new Map<number, number>();
    const span = 2 * maxFrames;
    for (let q = 0; q < fp.bits.length; q++) {
      if (!fp.audible[q]) continue;
      const word = fp.bits[q];
      // The remembered frame may be even or odd, so both parts are looked up.
      for (let part = 0; part < 2; part++) {
        const key = keyOf(word, part);
        if (this.bucketSize[key] > MAX_BUCKET_SCAN) continue;
        for (let e = this.head[key]; e !== NO_ENTRY; e = this.link[e]) {
          const slot = Math.floor(e / maxFrames);
          const offset = (e % maxFrames) - q; // remembered frame - this frame
          const v = slot * span + offset + maxFrames;
          votes.set(v, (votes.get(v) ?? 0) + 1);
        }
      }
    }
    // The best-voted offset of each remembered call, checked on the whole overlap (±1 frame: a
    // misalignment of half a hop splits the votes between two offsets).
    const best = new Map<number, { offset: number; votes: number }>();
    for (const [v, n] of votes) {
      if (n < MIN_VOTES) continue;
      const slot = Math.floor(v / span);
      const b = best.get(slot);
      if (!b || n > b.votes) best.set(slot, { offset: (v % span) - maxFrames, votes: n });
    }
    const out: RepeatMatch[] = [];
    for (const [slotIndex, { offset }] of best) {
      const s = this.slots[slotIndex];
      if (!s) continue;
      let rate = 1;
      let at = offset;
      for (const d of [offset - 1, offset, offset + 1]) {
        const r = bitErrorRate(fp, s.fingerprint, d);
        if (r.frames >= this.opts.minOverlapFrames && r.rate < rate) {
          rate = r.rate;
          at = d;
        }
      }
      if (rate <= this.opts.maxBitErrorRate) {
        out.push({
          callId: s.callId,
          callerKey: s.callerKey,
          atMs: s.atMs,
          bitErrorRate: rate,
          offsetMs: (-at * FINGERPRINT_HOP_SAMPLES * 1000) / FINGERPRINT_SAMPLE_RATE_HZ,
        });
      }
    }
    return out.sort((a, b) => a.atMs - b.atMs);
  }

  private remember(entry: RepeatEntry): void {
    const index = this.next;
    this.forgetSlot(index);
    const fp = entry.fingerprint;
    const { maxFrames } = this.opts;
    for (let f = 0; f < fp.bits.length; f++) {
      if (!fp.audible[f]) continue;
      const key = keyOf(fp.bits[f], f);
      const e = index * maxFrames + f;
      const next = this.head[key];
      this.link[e] = next;
      this.prev[e] = NO_ENTRY;
      if (next !== NO_ENTRY) this.prev[next] = e;
      this.head[key] = e;
      if (this.bucketSize[key] < 0xffff) this.bucketSize[key]++;
    }
    this.slots[index] = {
      callId: entry.callId,
      callerKey: entry.callerKey,
      atMs: entry.atMs,
      fingerprint: fp,
    };
    this.filled = Math.min(this.filled + 1, this.slots.length);
    this.next = (index + 1) % this.slots.length;
  }

  /** Forgets the calls remembered before `cutoffMs`, oldest first. */
  private forgetBefore(cutoffMs: number): void {
    while (this.filled > 0) {
      const oldest = (this.next - this.filled + this.slots.length) % this.slots.length;
      const s = this.slots[oldest];
      if (!s) {
        this.filled--; // cannot happen in ring order; never loop on it
        continue;
      }
      if (s.atMs >= cutoffMs) return;
      this.forgetSlot(oldest);
    }
  }

  private forgetSlot(index: number): void {
    if (!this.slots[index]) return;
    this.unlink(index);
    this.slots[index] = null;
    this.filled--;
  }

  /** Takes a remembered call's frames out of the key chains. */
  private unlink(index: number): void {
    const s = this.slots[index]!;
    const { maxFrames } = this.opts;
    const fp = s.fingerprint;
    for (let f = 0; f < fp.bits.length; f++) {
      if (!fp.audible[f]) continue;
      const key = keyOf(fp.bits[f], f);
      const e = index * maxFrames + f;
      const before = this.prev[e];
      const after = this.link[e];
      if (before === NO_ENTRY) this.head[key] = after;
      else this.link[before] = after;
      if (after !== NO_ENTRY) this.prev[after] = before;
      this.prev[e] = NO_ENTRY;
      this.link[e] = NO_ENTRY;
      // A count that reached the cap stays there (such a key is skipped anyway).
      if (this.bucketSize[key] < 0xffff) this.bucketSize[key]--;
    }
  }
}

function clip(fp: AudioFingerprint, maxFrames: number): AudioFingerprint {
  if (fp.bits.length <= maxFrames) return fp;
  return { bits: fp.bits.slice(0, maxFrames), audible: fp.audible.slice(0, maxFrames) };
}
