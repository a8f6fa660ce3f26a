/**
 * RTP streams of a capture, decoded to 8 kHz audio on a faithful timeline.
 *
 * - A stream is the packets with one SSRC on one UDP 5-tuple. Only G.711 (PT 0 PCMU, PT 8
 *   PCMA) is decoded; other payload types on the same stream (comfort noise, DTMF) count for
 *   sequence accounting but add no audio. RTCP and non-RTP UDP are ignored; a "stream" of
 *   fewer than MIN_AUDIO_PACKETS G.711 packets is taken for UDP that happened to look like RTP.
 * - Packets are put in extended-sequence order (16-bit wrap), duplicates dropped, and placed
 *   by RTP timestamp: a gap (lost packets, or silence suppression) is filled with silence so
 *   that times in the analysis match times in the call. A timestamp jump that is not
 *   plausible as a gap (> MAX_GAP_MS, or backwards) is bridged by the capture-time gap instead.
 * - The caller's stream: the one sent from the address:port in the first INVITE's SDP offer
 *   (capture-sip.ts); if the capture has no usable SIP, the stream whose first packet is
 *   earliest (in a call the caller usually starts sending first, right after its INVITE/ACK).
 */
import { AudioFormatError } from './audio-format-error.js';
import { findCallerMedia } from './capture-sip.js';
import { decodeG711ToFloat, type G711Law } from './g711.js';
import type { Capture, UdpDatagram } from './pcap.js';
import { parseRtp, SequenceUnwrapper, tsDelta, type RtpPacket } from '../media/rtp-packet.js';

export interface RtpStreamInfo {
  ssrc: number;
  /** `ip:port` (IPv6 as `[ip]:port`). */
  src: string;
  dst: string;
  payloadType: number;
  codec: G711Law;
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
  /** The decoded audio at 8 kHz, gaps filled with silence. */
  samples8k: Float32Array;
  isCaller: boolean;
}

const SAMPLE_RATE_HZ = 8000;
const MIN_AUDIO_PACKETS = 5;
/** Longest timestamp gap taken at face value (silence suppression can be this long). */
const MAX_GAP_MS = 10_000;
/** Longer than any call we would analyse; beyond it the timeline comes from a broken or hostile capture. */
const MAX_STREAM_MS = 4 * 3600_000;

interface Received {
  extSeq: number;
  timeMs: number;
  rtp: RtpPacket;
}

interface Group {
  key: string;
  ssrc: number;
  src: string;
  dst: string;
  firstTimeMs: number;
  unwrap: SequenceUnwrapper;
  packets: Received[];
  seen: Set<number>;
  audioPackets: number;
  maxExtSeq: number;
  reordered: number;
  duplicates: number;
}

export function extractRtpStreams(capture: Capture): RtpStreamInfo[] {
  const groups = new Map<string, Group>();
  for (const d of capture.datagrams) {
    const rtp = parseRtp(d.payload);
    if (!rtp) continue;
    const src = endpoint(d.srcAddress, d.srcPort);
    const dst = endpoint(d.dstAddress, d.dstPort);
    const key = `${rtp.ssrc}|${src}|${dst}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        key,
        ssrc: rtp.ssrc,
        src,
        dst,
        firstTimeMs: d.timeMs,
        unwrap: new SequenceUnwrapper(),
        packets: [],
        seen: new Set(),
        audioPackets: 0,
        maxExtSeq: -Infinity,
        reordered: 0,
        duplicates: 0,
      };
      groups.set(key, g);
    }
    const extSeq = g.unwrap.extend(rtp.sequenceNumber);
    // The first copy of a sequence number wins; a late duplicate is not a reordering.
    if (g.seen.has(extSeq)) {
      g.duplicates++;
      continue;
    }
    g.seen.add(extSeq);
    if (extSeq < g.maxExtSeq) g.reordered++;
    g.maxExtSeq = Math.max(g.maxExtSeq, extSeq);
    g.packets.push({ extSeq, timeMs: d.timeMs, rtp });
    if (lawOf(rtp.payloadType) && rtp.payload.length > 0) g.audioPackets++;
  }
  const streams = [...groups.values()]
    .filter((g) => g.audioPackets >= MIN_AUDIO_PACKETS)
    .map(buildStream)
    .sort((a, b) => a.firstTimeMs - b.firstTimeMs);
  markCaller(streams, capture.datagrams);
  return streams;
}

function buildStream(g: Group): RtpStreamInfo {
  const unique = [...g.packets].sort((a, b) => a.extSeq - b.extSeq); // duplicates were dropped on arrival
  const expected = unique[unique.length - 1].extSeq - unique[0].extSeq + 1;
  const audio = unique.filter((p) => lawOf(p.rtp.payloadType) && p.rtp.payload.length > 0);
  const placed = placeOnTimeline(audio);
  const total =
    placed.length > 0 ? placed[placed.length - 1].at + audio[audio.length - 1].rtp.payload.length : 0;
  const first = audio[0].rtp.payloadType;
  if (total > (MAX_STREAM_MS * SAMPLE_RATE_HZ) / 1000) {
    throw new AudioFormatError(
      `RTP stream ssrc=0x${g.ssrc.toString(16).padStart(8, '0')} ${g.src}->${g.dst} spans more than ${MAX_STREAM_MS / 3600_000} h of RTP time`,
    );
  }
  const samples8k = new Float32Array(total);
  placed.forEach((at, i) => {
    const p = audio[i].rtp;
    decodeG711ToFloat(lawOf(p.payloadType) as G711Law, p.payload, samples8k.subarray(at.at));
  });
  return {
    ssrc: g.ssrc,
    src: g.src,
    dst: g.dst,
    payloadType: first,
    codec: lawOf(first) as G711Law,
    packetCount: unique.length,
    lostCount: expected - unique.length,
    duplicateCount: g.duplicates,
    reorderedCount: g.reordered,
    firstTimeMs: g.firstTimeMs,
    durationMs: (total / SAMPLE_RATE_HZ) * 1000,
    samples8k,
    isCaller: false,
  };
}

/** Sample offset of each audio packet (in sequence order) in the stream's decoded audio. */
function placeOnTimeline(audio: Received[]): Array<{ at: number }> {
  const out: Array<{ at: number }> = [];
  let at = 0;
  for (let i = 0; i < audio.length; i++) {
    if (i > 0) {
      const prev = audio[i - 1];
      const prevLen = prev.rtp.payload.length;
      const gap = tsDelta(prev.rtp.timestamp, audio[i].rtp.timestamp) - prevLen;
      let fill: number;
      if (gap >= 0 && gap <= (MAX_GAP_MS * SAMPLE_RATE_HZ) / 1000) {
        fill = gap;
      } else {
        // New timestamp base (or a sender bug): trust the capture clock, within the same bound.
        const wallGap = Math.round(((audio[i].timeMs - prev.timeMs) * SAMPLE_RATE_HZ) / 1000) - prevLen;
        fill = Math.min(Math.max(0, wallGap), (MAX_GAP_MS * SAMPLE_RATE_HZ) / 1000);
      }
      at = out[i - 1].at + prevLen + fill;
    }
    out.push({ at });
  }
  return out;
}

function lawOf(payloadType: number): G711Law | null {
  return payloadType === 0 ? 'pcmu' : payloadType === 8 ? 'pcma' : null;
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function markCaller(streams: RtpStreamInfo[], datagrams: readonly UdpDatagram[]): void {
  if (streams.length === 0) return;
  const media = findCallerMedia(datagrams);
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
