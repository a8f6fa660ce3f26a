/**
 * RTP streams of a capture, decoded to 8 kHz audio on a faithful timeline.
 *
 * - A stream is the packets with one SSRC on one UDP 5-tuple. G.711 (PT 0 PCMU, PT 8 PCMA) is
 *   decoded, and G.729 (PT 18) where the bcg729 addon is built (g729.ts); other payload types on
 *   the same stream (comfort noise, DTMF) count for sequence accounting but add no audio. RTCP and
 *   non-RTP UDP are ignored; a "stream" of fewer than MIN_AUDIO_PACKETS audio packets is taken for
 *   UDP that happened to look like RTP.
 * - Packets are put in extended-sequence order (16-bit wrap), duplicates dropped, and placed
 *   by RTP timestamp: a gap (lost packets, or silence suppression) is filled with silence so
 *   that times in the analysis match times in the call. A timestamp jump that is not
 *   plausible as a gap (> MAX_GAP_MS, or backwards) is bridged by the capture-time gap instead.
 * - The caller's stream: the one sent from the address:port in the first INVITE's SDP offer
 *   (capture-sip.ts); if the capture has no usable SIP, the stream whose first packet is
 *   earliest (in a call the caller usually starts sending first, right after its INVITE/ACK).
 */
import { AudioFormatError } from './audio-format-error.js';
import { datagramOfferMedia, TcpSipScanner, type CallerMedia } from './capture-sip.js';
import { decodeG711ToFloat, type G711Law } from './g711.js';
import { decodeOrConceal, G729_FRAME_BYTES, G729_FRAME_SAMPLES, loadG729, type G729Decoder } from './g729.js';
import type { Capture, TcpSegment, UdpDatagram } from './pcap.js';
import { parseRtp, SequenceUnwrapper, tsDelta } from '../media/rtp-packet.js';

export interface RtpStreamInfo {
  ssrc: number;
  /** `ip:port` (IPv6 as `[ip]:port`). */
  src: string;
  dst: string;
  payloadType: number;
  codec: CaptureCodec;
  /** Distinct packets received (duplicates not counted). */
  packetCount: number;
  /** Packets missing from the sequence (RFC 3550 expected minus received). */
  lostCount: number;
  duplicateCount: number;
  /** Packets that arrived after a later sequence number. */
  reorderedCount: number;
  /** Capture time of the first packet, ms since the epoch. */
  firstTimeMs: number;
  /** Length of the decoded audio. */
  durationMs: number;
  /**
   * The decoded audio at 8 kHz, gaps filled with silence. Reading it throws when the collector
   * dropped the stream's payloads (`audioKept` false).
   */
  samples8k: Float32Array;
  isCaller: boolean;
  /** False when a collector with `audio: 'caller'` dropped this stream's payloads (not the caller's). */
  audioKept: boolean;
}

/** Codecs decoded from captures. */
export type CaptureCodec = G711Law | 'g729';

const SAMPLE_RATE_HZ = 8000;
const MIN_AUDIO_PACKETS = 5;
/** Longest timestamp gap taken at face value (silence suppression can be this long). */
const MAX_GAP_MS = 10_000;
/** Longer than any call we would analyse; beyond it the timeline comes from a broken or hostile capture. */
const MAX_STREAM_MS = 4 * 3600_000;

/**
 * What a stream keeps of its packets, in column arrays that double when full: a few numbers per
 * packet and the audio payload bytes in one pool (not one small buffer per packet, whose
 * bookkeeping would cost more than the 160 bytes it holds). The capture chunk a packet came in
 * is not retained.
 */
class PacketTable {
  n = 0;
  extSeq = new Float64Array(64);
  timeMs = new Float64Array(64);
  timestamp = new Uint32Array(64);
  payloadType = new Uint8Array(64);
  offset = new Float64Array(64);
  length = new Uint32Array(64);
  pool = new Uint8Array(64 * 160);
  poolUsed = 0;
  /** Payload bytes are no longer kept (lengths still are: they place packets on the timeline). */
  released = false;

  releasePayloads(): void {
    this.released = true;
    this.pool = new Uint8Array(0);
    this.poolUsed = 0;
  }

  push(
    extSeq: number,
    timeMs: number,
    timestamp: number,
    payloadType: number,
    payload: Uint8Array | null,
  ): void {
    if (this.n === this.extSeq.length) {
      const grow = <T extends Float64Array | Uint32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.extSeq = grow(this.extSeq);
      this.timeMs = grow(this.timeMs);
      this.timestamp = grow(this.timestamp);
      this.payloadType = grow(this.payloadType);
      this.offset = grow(this.offset);
      this.length = grow(this.length);
    }
    const len = payload?.length ?? 0;
    const keep = payload !== null && !this.released;
    if (keep && this.poolUsed + len > this.pool.length) {
      const bigger = new Uint8Array(Math.max(this.pool.length * 2, this.poolUsed + len));
      bigger.set(this.pool.subarray(0, this.poolUsed));
      this.pool = bigger;
    }
    if (keep) this.pool.set(payload, this.poolUsed);
    const i = this.n++;
    this.extSeq[i] = extSeq;
    this.timeMs[i] = timeMs;
    this.timestamp[i] = timestamp;
    this.payloadType[i] = payloadType;
    this.offset[i] = this.poolUsed;
    this.length[i] = len;
    if (keep) this.poolUsed += len;
  }

  payload(i: number): Uint8Array {
    if (this.released) throw new Error('RTP payloads of this stream were not kept');
    return this.pool.subarray(this.offset[i], this.offset[i] + this.length[i]);
  }
}

interface Group {
  key: string;
  ssrc: number;
  src: string;
  dst: string;
  firstTimeMs: number;
  unwrap: SequenceUnwrapper;
  packets: PacketTable;
  seen: Set<number>;
  audioPackets: number;
  maxExtSeq: number;
  reordered: number;
  duplicates: number;
}

export function extractRtpStreams(capture: Capture): RtpStreamInfo[] {
  const collector = new RtpStreamCollector({ audio: 'all' });
  for (const d of capture.datagrams) collector.add(d);
  return collector.finish();
}

export interface RtpStreamCollectorOptions {
  /**
   * 'all' (default): every stream's payloads are kept. 'caller': once a stream sent from the first
   * INVITE's offer address has MIN_AUDIO_PACKETS audio packets, the caller is known for certain
   * (markCaller takes an exact match first), so the payloads of every stream from another source
   * are dropped and no longer stored: a capture of many calls then holds the audio of one.
   * Until then (and without SIP, or behind NAT, where the choice needs every stream) all are kept.
   */
  audio?: 'all' | 'caller';
}

/**
 * The same, one datagram at a time (scanCapture's callback), keeping only the RTP that can carry
 * audio (a compact record and a copy of the payload per packet) and the caller's SIP offer.
 */
export class RtpStreamCollector {
  private readonly groups = new Map<string, Group>();
  private callerMedia: CallerMedia | null = null;
  private readonly tcpSip = new TcpSipScanner();
  /** The exact caller source once certain (audio: 'caller' only); other sources keep no payloads. */
  private callerSrc: string | null = null;

  constructor(private readonly opts: RtpStreamCollectorOptions = {}) {}

  /** A TCP segment of the capture (scanCapture's onTcpSegment): SIP over TCP can name the caller too. */
  addTcp(seg: TcpSegment): void {
    if (this.callerMedia === null) this.callerMedia = this.tcpSip.add(seg);
  }

  add(d: UdpDatagram): void {
    if (this.callerMedia === null) this.callerMedia = datagramOfferMedia(d);
    const rtp = parseRtp(d.payload);
    if (!rtp) return;
    const src = endpoint(d.srcAddress, d.srcPort);
    const dst = endpoint(d.dstAddress, d.dstPort);
    const key = `${rtp.ssrc}|${src}|${dst}`;
    let g = this.groups.get(key);
    if (!g) {
      g = {
        key,
        ssrc: rtp.ssrc,
        src,
        dst,
        firstTimeMs: d.timeMs,
        unwrap: new SequenceUnwrapper(),
        packets: new PacketTable(),
        seen: new Set(),
        audioPackets: 0,
        maxExtSeq: -Infinity,
        reordered: 0,
        duplicates: 0,
      };
      this.groups.set(key, g);
      if (this.callerSrc !== null && src !== this.callerSrc) g.packets.releasePayloads();
    }
    const extSeq = g.unwrap.extend(rtp.sequenceNumber);
    // The first copy of a sequence number wins; a late duplicate is not a reordering.
    if (g.seen.has(extSeq)) {
      g.duplicates++;
      return;
    }
    g.seen.add(extSeq);
    if (extSeq < g.maxExtSeq) g.reordered++;
    g.maxExtSeq = Math.max(g.maxExtSeq, extSeq);
    const audio = codecOf(rtp.payloadType) !== null && rtp.payload.length > 0;
    // Only audio payloads are decoded later; other packets count for sequence accounting.
    g.packets.push(extSeq, d.timeMs, rtp.timestamp, rtp.payloadType, audio ? rtp.payload : null);
    if (audio) {
      g.audioPackets++;
      if (g.audioPackets === MIN_AUDIO_PACKETS) this.maybeFixCaller(src);
    }
  }

  private maybeFixCaller(src: string): void {
    if (this.opts.audio !== 'caller' || this.callerSrc !== null || this.callerMedia === null) return;
    if (src !== endpoint(this.callerMedia.address, this.callerMedia.port)) return;
    this.callerSrc = src;
    for (const g of this.groups.values()) if (g.src !== src) g.packets.releasePayloads();
  }

  finish(): RtpStreamInfo[] {
    const streams = [...this.groups.values()]
      .filter((g) => g.audioPackets >= MIN_AUDIO_PACKETS)
      .map(buildStream)
      .sort((a, b) => a.firstTimeMs - b.firstTimeMs);
    markCaller(streams, this.callerMedia);
    return streams;
  }
}

function buildStream(g: Group): RtpStreamInfo {
  const t = g.packets;
  // Sequence order (duplicates were dropped on arrival).
  const order = Array.from({ length: t.n }, (_, i) => i).sort((x, y) => t.extSeq[x] - t.extSeq[y]);
  const expected = t.extSeq[order[order.length - 1]] - t.extSeq[order[0]] + 1;
  const audio = order.filter((i) => codecOf(t.payloadType[i]) !== null && t.length[i] > 0);
  const placed = placeOnTimeline(t, audio);
  const total = placed.length > 0 ? placed[placed.length - 1] + samplesOf(t, audio[audio.length - 1]) : 0;
  const first = t.payloadType[audio[0]];
  const name = `RTP stream ssrc=0x${g.ssrc.toString(16).padStart(8, '0')} ${g.src}->${g.dst}`;
  if (total > (MAX_STREAM_MS * SAMPLE_RATE_HZ) / 1000) {
    throw new AudioFormatError(`${name} spans more than ${MAX_STREAM_MS / 3600_000} h of RTP time`);
  }
  let decoded: Float32Array | null = null;
  const info = {
    ssrc: g.ssrc,
    src: g.src,
    dst: g.dst,
    payloadType: first,
    codec: codecOf(first)!,
    packetCount: t.n,
    lostCount: expected - t.n,
    duplicateCount: g.duplicates,
    reorderedCount: g.reordered,
    firstTimeMs: g.firstTimeMs,
    durationMs: (total / SAMPLE_RATE_HZ) * 1000,
    isCaller: false,
    audioKept: !t.released,
  } as RtpStreamInfo;
  // Decoded on first use: a capture of many calls holds 4 bytes per sample only for the streams
  // that are analysed.
  // A dropped stream's getter is not enumerable, so spreading or serialising the info never throws.
  Object.defineProperty(info, 'samples8k', {
    enumerable: !t.released,
    get(): Float32Array {
      if (decoded === null) {
        if (t.released) {
          throw new Error(`the audio of ${name} was not kept (only the caller's is)`);
        }
        decoded = new Float32Array(total);
        // One G.729 channel for the stream, in sequence order (its state carries across packets).
        let g729: G729Decoder | null = null;
        for (let k = 0; k < audio.length; k++) {
          const i = audio[k];
          const codec = codecOf(t.payloadType[i])!;
          if (codec !== 'g729') {
            decodeG711ToFloat(codec, t.payload(i), decoded.subarray(placed[k]));
            continue;
          }
          g729 ??= new (loadG729().codec!.G729Decoder)();
          const pcm = decodeOrConceal(g729, t.payload(i), samplesOf(t, i) / G729_FRAME_SAMPLES);
          decoded.set(pcm.subarray(0, samplesOf(t, i)), placed[k]);
        }
        g729?.close();
      }
      return decoded;
    },
  });
  return info;
}

/** Sample offset of each audio packet (in sequence order) in the stream's decoded audio. */
function placeOnTimeline(t: PacketTable, audio: number[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (let k = 0; k < audio.length; k++) {
    if (k > 0) {
      const prev = audio[k - 1];
      const cur = audio[k];
      const prevLen = samplesOf(t, prev);
      const gap = tsDelta(t.timestamp[prev], t.timestamp[cur]) - prevLen;
      let fill: number;
      if (gap >= 0 && gap <= (MAX_GAP_MS * SAMPLE_RATE_HZ) / 1000) {
        fill = gap;
      } else {
        // New timestamp base (or a sender bug): trust the capture clock, within the same bound.
        const wallGap = Math.round(((t.timeMs[cur] - t.timeMs[prev]) * SAMPLE_RATE_HZ) / 1000) - prevLen;
        fill = Math.min(Math.max(0, wallGap), (MAX_GAP_MS * SAMPLE_RATE_HZ) / 1000);
      }
      at = out[k - 1] + prevLen + fill;
    }
    out.push(at);
  }
  return out;
}

function codecOf(payloadType: number): CaptureCodec | null {
  if (payloadType === 0) return 'pcmu';
  if (payloadType === 8) return 'pcma';
  return payloadType === 18 && loadG729().codec ? 'g729' : null;
}

/** Samples an audio packet decodes to: a byte each in G.711; 80 per 10-byte G.729 frame (or 2-byte SID). */
function samplesOf(t: PacketTable, i: number): number {
  const len = t.length[i];
  if (t.payloadType[i] !== 18) return len;
  return (Math.floor(len / G729_FRAME_BYTES) + (len % G729_FRAME_BYTES ? 1 : 0)) * G729_FRAME_SAMPLES;
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function markCaller(streams: RtpStreamInfo[], media: CallerMedia | null): void {
  if (streams.length === 0) return;
  if (media) {
    const exact = endpoint(media.address, media.port);
    let caller = streams.find((s) => s.src === exact);
    // Behind NAT the SDP shows a private address; the port usually survives.
    if (!caller) {
      const byPort = streams.filter((s) => s.src.endsWith(`:${media.port}`));
      if (byPort.length === 1) caller = byPort[0];
    }
    if (caller) {
      caller.isCaller = true;
      return;
    }
  }
  streams[0].isCaller = true;
}
