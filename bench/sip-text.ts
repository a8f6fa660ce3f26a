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

/** An SDP body offering or answering PCMU (and telephone-event) at 127.0.0.1:`port`. */
export function pcmuSdp(port: number, owner: string, sessionId: number | string = 1): string {
  return [
    'v=0',
    `o=${owner} ${sessionId} 1 IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}
