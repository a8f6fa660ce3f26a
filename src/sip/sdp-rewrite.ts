import { parse, write, type SessionDescription } from 'sdp-transform';

/**
 * Offer/answer rewriting for an anchored call: the c= address and the audio m= port point at the
 * gateway's media socket for the leg the SDP is sent to, and only codecs the detector can decode
 * (PCMU/PCMA from config.media.codecs) plus telephone-event survive. G.722, G.729 and Opus are removed
 * from offers, so the far end answers with G.711; G.729 stays in an offer without G.711
 * (config.media.fallbackCodecs). ptime, direction and every other attribute stay.
 * Pure: no sockets; the caller applies the returned remote address and payload map to the media session.
 */
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpMediaInfo {
  /** Where the peer wants to receive RTP (c= + m= port); port 0 = stream rejected. */
  remote: { address: string; rtpPort: number; rtcpPort?: number };
  payloadMap: Record<number, string>;
  direction: MediaDirection;
  /**
   * First audio codec left after filtering ('pcmu' | 'pcma', or a fallback codec: 'g729'), or null if none; with
   * `undecodable: 'keep'` and no allowed codec, the first one offered ('g729', 'opus', ...).
   */
  codec: string | null;
  /** False when no allowed codec was offered and the body kept its codecs (`undecodable: 'keep'`). */
  decodable: boolean;
  /**
   * Encrypted media: 'required' for a secure profile (RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF), whose
   * payload voiceguard cannot read; 'declined' for best-effort SDES (a=crypto on RTP/AVP), whose keys
   * are removed when the body is rewritten so that both ends fall back to plain RTP; else 'none'.
   */
  srtp: 'none' | 'declined' | 'required';
  /** The audio m= line's transport profile (RTP/AVP, RTP/SAVP, ...). */
  profile: string;
  /** SDES crypto lines of the audio stream (RFC 4568), in the order offered. */
  crypto: SdesCrypto[];
}

/** One a=crypto line (RFC 4568): its tag, suite name and key parameters (`inline:...`). */
export interface SdesCrypto {
  tag: number;
  suite: string;
  keyParams: string;
}

/** How the body's media security is rewritten for the leg it goes to (SRTP terminated by voiceguard). */
export interface SdpSecurityRewrite {
  /** Turn a secure profile into the plain one and drop its keys (the leg gets plain RTP). */
  plain?: boolean;
  /**
   * SRTP with our own keys: an answer gets the offer's profile and one key under the tag the offer
   * chose; an offer (toward a PBX that wants SRTP) gets one key per suite it may choose.
   */
  secure?: { profile: string; crypto: SdesCrypto[] };
}

export interface SdpRewriteResult {
  sdp: string;
  media: SdpMediaInfo;
}

export class SdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdpError';
  }
}

const STATIC_PT: Record<number, string> = { 0: 'PCMU', 8: 'PCMA', 9: 'G722', 18: 'G729', 3: 'GSM' };

/** Inspect an SDP body without rewriting it (for unanchored calls and for tests). */
export function readSdp(sdp: string): SdpMediaInfo {
  return rewriteSdp(sdp, null, null).media;
}

/**
 * Rewrite one SDP body. `local` = the gateway's media address/port toward the receiver of this
 * body (null: leave addresses untouched). `codecs` = allowed codec names (null: keep all). A body
 * with no allowed codec keeps only its `fallback` codecs (G.729: decodable, at lower accuracy) if
 * it has any; else it throws an SdpError (`undecodable: 'refuse'`) or keeps every codec it has
 * (`'keep'`: relayed, `decodable: false`).
 */
export function rewriteSdp(
  sdp: string,
  local: { address: string; rtpPort: number } | null,
  codecs: readonly string[] | null,
  security: SdpSecurityRewrite = {},
  undecodable: 'refuse' | 'keep' = 'refuse',
  fallback: readonly string[] = [],
): SdpRewriteResult {
  let session: SessionDescription;
  try {
    session = parse(sdp);
  } catch (err) {
    throw new SdpError(`unparseable SDP: ${(err as Error).message}`);
  }
  const audio = session.media.find((m) => m.type === 'audio');
  if (!audio) throw new SdpError('SDP has no audio stream');
  const address = audio.connection?.ip ?? session.connection?.ip;
  if (!address) throw new SdpError('SDP has no c= address');
  const remote = { address, rtpPort: audio.port, rtcpPort: audio.rtcp?.port };
  const direction = (audio.direction ?? session.direction ?? 'sendrecv') as MediaDirection;
  const secureProfile = /SAVP/i.test(audio.protocol ?? '');
  const keys =
    (audio.crypto?.length ?? 0) > 0 || audio.fingerprint !== undefined || session.fingerprint !== undefined;
  const srtp = secureProfile ? 'required' : keys ? 'declined' : 'none';
  const profile = audio.protocol ?? 'RTP/AVP';
  const crypto = (audio.crypto ?? []).map((c) => ({ tag: c.id, suite: c.suite, keyParams: c.config }));

  const allowed = codecs ? new Set(codecs.map((c) => c.toUpperCase())) : null;
  const offered = String(audio.payloads ?? '')
    .split(/\s+/)
    .filter((p) => p !== '')
    .map(Number);
  const nameOf = (pt: number): string => {
    const rtp = audio.rtp.find((r) => r.payload === pt);
    return (rtp?.codec ?? STATIC_PT[pt] ?? `pt${pt}`).toUpperCase();
  };
  /** The offered payload types named in `names` (null: all), and telephone-event. */
  const pick = (names: Set<string> | null) =>
    offered.filter((pt) => names === null || names.has(nameOf(pt)) || nameOf(pt) === 'TELEPHONE-EVENT');
  const audible = (pts: number[]) => pts.some((pt) => nameOf(pt) !== 'TELEPHONE-EVENT');
  let keep = pick(allowed);
  let decodable = true;
  if (audio.port !== 0 && !audible(keep) && fallback.length > 0) {
    const fb = pick(new Set(fallback.map((c) => c.toUpperCase())));
    if (audible(fb)) keep = fb;
  }
  if (audio.port !== 0 && !audible(keep)) {
    if (undecodable === 'refuse' || !audible(offered))
      throw new SdpError(`no acceptable audio codec offered (${offered.map(nameOf).join(', ')})`);
    keep = offered;
    decodable = false;
  }
  const payloadMap: Record<number, string> = {};
  for (const pt of keep)
    payloadMap[pt] = nameOf(pt) === 'TELEPHONE-EVENT' ? 'telephone-event' : nameOf(pt).toLowerCase();
  const firstAudio = keep.find((pt) => nameOf(pt) !== 'TELEPHONE-EVENT');
  const codec = firstAudio === undefined ? null : nameOf(firstAudio).toLowerCase();

  if (allowed && decodable) {
    const keepSet = new Set(keep);
    audio.payloads = keep.join(' ');
    audio.rtp = audio.rtp.filter((r) => keepSet.has(r.payload));
    if (audio.fmtp) audio.fmtp = audio.fmtp.filter((f) => keepSet.has(f.payload));
    if (audio.rtcpFb)
      audio.rtcpFb = audio.rtcpFb.filter((f) => f.payload === '*' || keepSet.has(Number(f.payload)));
  }
  if (local) {
    const ipVer = local.address.includes(':') ? 6 : 4;
    if (session.connection) session.connection = { version: ipVer, ip: local.address };
    if (audio.connection || !session.connection) audio.connection = { version: ipVer, ip: local.address };
    if (session.origin) session.origin = { ...session.origin, address: local.address, ipVer };
    if (audio.port !== 0) audio.port = local.rtpPort;
    // a=rtcp pointed at the peer's RTCP port; the relay's RTCP is always rtp+1.
    if (audio.rtcp) audio.rtcp = { port: local.rtpPort + 1 };
    if (srtp === 'declined') {
      // Best-effort SRTP (RFC 4568 on RTP/AVP): without the keys the answerer stays with plain RTP,
      // which the relay can fork to the detector.
      delete audio.crypto;
      delete audio.fingerprint;
      delete audio.setup;
      delete session.fingerprint;
    }
  }
  if (security.plain && secureProfile) {
    // RTP/SAVP -> RTP/AVP, RTP/SAVPF and UDP/TLS/RTP/SAVPF -> RTP/AVPF.
    audio.protocol = /SAVPF/i.test(profile) ? 'RTP/AVPF' : 'RTP/AVP';
    delete audio.crypto;
    delete audio.fingerprint;
    delete audio.setup;
    delete session.fingerprint;
  }
  if (security.secure) {
    audio.protocol = security.secure.profile;
    audio.crypto = security.secure.crypto.map((c) => ({ id: c.tag, suite: c.suite, config: c.keyParams }));
  }
  return {
    sdp: write(session),
    media: { remote, payloadMap, direction, codec, decodable, srtp, profile, crypto },
  };
}
