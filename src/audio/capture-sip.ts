/**
 * Where the caller sends its RTP from, as far as a capture's SIP says: the SDP offer of the
 * first initial INVITE (no To tag) names the address and port the caller receives audio on,
 * and with symmetric RTP (RFC 4961, what phones and trunks do) it sends from the same one.
 * Only reads; the B2BUA's real SIP stack lives in src/sip.
 */
import { parse as parseSdp } from 'sdp-transform';
import type { TcpSegment, UdpDatagram } from './udp-decoder.js';

export interface CallerMedia {
  address: string;
  port: number;
  callId: string | null;
}

const INVITE = Buffer.from('INVITE ');

/** The offer's media if this UDP datagram is an initial INVITE with an SDP offer, else null (cheap for RTP). */
export function datagramOfferMedia(d: UdpDatagram): CallerMedia | null {
  // SIP on any port: the request line is what identifies it, not 5060.
  if (d.payload.length < INVITE.length || !INVITE.equals(d.payload.subarray(0, INVITE.length))) return null;
  return inviteOfferMedia(
    Buffer.from(d.payload.buffer, d.payload.byteOffset, d.payload.length).toString('latin1'),
  );
}

/** Per TCP flow, the bytes kept while looking for a whole SIP message; a flow that exceeds it is dropped. */
const MAX_FLOW_BYTES = 256 * 1024;
const MAX_EARLY_SEGMENTS = 64;
const SIP_START = /^(?:[A-Z]+ \S+ SIP\/2\.0|SIP\/2\.0 \d{3} )/;

interface TcpFlow {
  nextSeq: number;
  buf: Buffer;
  /** Segments that arrived ahead of a gap, by sequence number. */
  early: Map<number, Uint8Array>;
}

/**
 * SIP over TCP in a capture: rebuilds each flow's byte stream from its segments (in order,
 * retransmissions dropped, a few out-of-order segments held) from the first segment that starts
 * a SIP message, splits it into messages by Content-Length, and reports the first initial
 * INVITE's offer. TLS (port 5061) cannot be read.
 */
export class TcpSipScanner {
  private readonly flows = new Map<string, TcpFlow | null>();

  /** The caller's media if this segment completes an INVITE with an offer, else null. */
  add(seg: TcpSegment): CallerMedia | null {
    const key = `${seg.srcAddress}|${seg.srcPort}|${seg.dstAddress}|${seg.dstPort}`;
    let flow = this.flows.get(key);
    if (flow === null) return null; // given up on
    if (!flow) {
      if (!SIP_START.test(Buffer.from(seg.payload.subarray(0, 64)).toString('latin1'))) return null;
      flow = { nextSeq: seg.seq, buf: Buffer.alloc(0), early: new Map() };
      this.flows.set(key, flow);
    }
    const ahead = (seg.seq - flow.nextSeq) >>> 0;
    if (ahead !== 0) {
      // Behind (a retransmission: the top bit of the 32-bit difference) or ahead of a gap.
      if (ahead < 0x80000000 && flow.early.size < MAX_EARLY_SEGMENTS)
        flow.early.set(seg.seq, seg.payload.slice());
      return null;
    }
    let data = Buffer.concat([flow.buf, seg.payload]);
    flow.nextSeq = (seg.seq + seg.payload.length) >>> 0;
    for (let next = flow.early.get(flow.nextSeq); next; next = flow.early.get(flow.nextSeq)) {
      flow.early.delete(flow.nextSeq);
      data = Buffer.concat([data, next]);
      flow.nextSeq = (flow.nextSeq + next.length) >>> 0;
    }
    for (;;) {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = data.subarray(0, end).toString('latin1');
      const cl = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(head);
      const total = end + 4 + (cl ? Number(cl[1]) : 0);
      if (data.length < total) break;
      const message = data.subarray(0, total).toString('latin1');
      data = data.subarray(total);
      if (message.startsWith('INVITE ')) {
        const media = inviteOfferMedia(message);
        if (media) return media;
      }
    }
    if (data.length > MAX_FLOW_BYTES) {
      this.flows.set(key, null);
      return null;
    }
    flow.buf = Buffer.from(data);
    return null;
  }
}

/** The audio address/port of an initial INVITE's SDP offer, or null. Never throws. */
export function inviteOfferMedia(message: string): CallerMedia | null {
  const split = /\r?\n\r?\n/.exec(message);
  if (!split) return null;
  const head = message.slice(0, split.index);
  const body = message.slice(split.index + split[0].length);
  const headers = head.split(/\r?\n/).slice(1);
  const header = (long: string, short: string): string | null => {
    const re = new RegExp(`^(?:${long}|${short})\\s*:\\s*(.*)$`, 'i');
    for (const h of headers) {
      const m = re.exec(h);
      if (m) return m[1].trim();
    }
    return null;
  };
  // A re-INVITE (To has a tag) may come from either side; only the first offer is the caller's.
  if (/;\s*tag=/i.test(header('To', 't') ?? '')) return null;
  if (!/v=0/.test(body)) return null;
  let sdp: ReturnType<typeof parseSdp>;
  try {
    sdp = parseSdp(body);
  } catch {
    return null;
  }
  const audio = sdp.media.find((m) => m.type === 'audio' && m.port > 0);
  const address = audio?.connection?.ip ?? sdp.connection?.ip;
  if (!audio || !address) return null;
  return { address: canonicalAddress(address), port: audio.port, callId: header('Call-ID', 'i') };
}

/** IPv6 in the RFC 5952 form udp-decoder.ts prints (SDP may use upper case or no `::`). */
function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}
