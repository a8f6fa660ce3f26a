/**
 * Where the caller sends its RTP from, as far as a capture's SIP says: the SDP offer of the
 * first initial INVITE (no To tag) names the address and port the caller receives audio on,
 * and with symmetric RTP (RFC 4961, what phones and trunks do) it sends from the same one.
 * Only reads; the B2BUA's real SIP stack lives in src/sip.
 */
import { parse as parseSdp } from 'sdp-transform';
import type { UdpDatagram } from './udp-decoder.js';

export interface CallerMedia {
  address: string;
  port: number;
  callId: string | null;
}

const INVITE = Buffer.from('INVITE ');

export function findCallerMedia(datagrams: readonly UdpDatagram[]): CallerMedia | null {
  for (const d of datagrams) {
    // SIP on any port: the request line is what identifies it, not 5060.
    if (d.payload.length < INVITE.length || !INVITE.equals(d.payload.subarray(0, INVITE.length))) continue;
    const media = inviteOfferMedia(
      Buffer.from(d.payload.buffer, d.payload.byteOffset, d.payload.length).toString('latin1'),
    );
    if (media) return media;
  }
  return null;
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
