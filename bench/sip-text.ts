/**
 * Hand-made SIP text for the load generator (bench/gateway.ts) and the TypeScript PBX of the tests
 * (test/gateway/ts-pbx.ts): header lines picked from a raw message, and a PCMU SDP body.
 */

/** The header lines of `msg` whose name (lower case; list compact forms too) is in `names`. */
export function headerLines(msg: string, names: string[]): string[] {
  const head = msg.split('\r\n\r\n')[0] ?? '';
  return head
    .split('\r\n')
    .slice(1)
    .filter((l) =>
      names.includes(
        l
          .slice(0, Math.max(0, l.indexOf(':')))
          .trim()
          .toLowerCase(),
      ),
    );
}

/** The value of the first header of `msg` named in `names`, or null. */
export function headerValue(msg: string, names: string[]): string | null {
  const line = headerLines(msg, names)[0];
  return line === undefined ? null : line.slice(line.indexOf(':') + 1).trim();
}

/** The port of the first audio m= line of a message's SDP body, or null. */
export function sdpAudioPort(msg: string): number | null {
  const m = /\r\nm=audio (\d+) /.exec(msg);
  return m ? Number(m[1]) : null;
}

/** One audio codec of an SDP body: payload type, rtpmap value and any fmtp lines. */
export interface SdpCodec {
  pt: number;
  rtpmap: string;
  fmtp?: string[];
}
export const PCMU: SdpCodec = { pt: 0, rtpmap: 'PCMU/8000' };
export const G729: SdpCodec = { pt: 18, rtpmap: 'G729/8000', fmtp: ['a=fmtp:18 annexb=no'] };

/** An SDP body offering or answering one codec (and telephone-event) at 127.0.0.1:`port`. */
export function audioSdp(port: number, owner: string, sessionId: number | string = 1, codec = PCMU): string {
  return [
    'v=0',
    `o=${owner} ${sessionId} 1 IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP ${codec.pt} 101`,
    `a=rtpmap:${codec.pt} ${codec.rtpmap}`,
    ...(codec.fmtp ?? []),
    'a=rtpmap:101 telephone-event/8000',
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** An SDP body offering or answering PCMU (and telephone-event) at 127.0.0.1:`port`. */
export function pcmuSdp(port: number, owner: string, sessionId: number | string = 1): string {
  return audioSdp(port, owner, sessionId, PCMU);
}
