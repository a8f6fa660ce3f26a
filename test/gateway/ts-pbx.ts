import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { parseRtp } from '../../src/media/rtp-packet.js';
import { headerLines, pcmuSdp } from '../../bench/sip-text.js';

/**
 * A small TypeScript PBX for the end-to-end tests: a real UDP SIP UAS (answers INVITE with
 * 180 + 200 and a PCMU SDP or one of the test's, which is the offer when the INVITE had none; records the ACK; answers
 * BYE with 200) and a real RTP socket that records every
 * packet the gateway relays toward the PBX, so the test can decode what a staff member hears.
 */
export interface ReceivedRtp {
  atMs: number;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Buffer;
  from: number;
}

export interface TsPbxCall {
  invite: string;
  /** The ACK to its 200 (with the SDP answer when the INVITE came without an offer). */
  ack: string | null;
  answeredAtMs: number;
  bye: string | null;
  byeAtMs: number | null;
}

export class TsPbx {
  readonly rtp: ReceivedRtp[] = [];
  readonly calls: TsPbxCall[] = [];
  private sip: Socket | null = null;
  private media: Socket | null = null;
  rtpPort = 0;
  private byeWaiters: (() => void)[] = [];

  /** `answerSdp`: the SDP of its 200, given its RTP port (default: PCMU and telephone-event). */
  constructor(private readonly answerSdp: (rtpPort: number) => string = (port) => pcmuSdp(port, 'tspbx')) {}

  async start(sipPort: number): Promise<void> {
    const sip = createSocket('udp4');
    const media = createSocket('udp4');
    this.sip = sip;
    this.media = media;
    await new Promise<void>((r) => sip.bind(sipPort, '127.0.0.1', () => r()));
    await new Promise<void>((r) => media.bind(0, '127.0.0.1', () => r()));
    this.rtpPort = media.address().port;
    media.on('message', (m, rinfo) => {
      const p = parseRtp(m);
      if (!p) return;
      this.rtp.push({
        atMs: Date.now(),
        payloadType: p.payloadType,
        sequenceNumber: p.sequenceNumber,
        timestamp: p.timestamp,
        ssrc: p.ssrc,
        payload: Buffer.from(p.payload),
        from: rinfo.port,
      });
    });
    sip.on('message', (m, rinfo) => this.onSip(m.toString(), rinfo));
  }

  private reply(rq: string, rinfo: RemoteInfo, status: string, extra: string[] = [], body = ''): void {
    const to = headerLines(rq, ['to', 't'])[0] ?? 'To: <sip:pbx@127.0.0.1>';
    const callId = headerLines(rq, ['call-id', 'i'])[0] ?? '';
    const toTagged = /;tag=/i.test(to) ? to : `${to};tag=tspbx${callId.length}`;
    const lines = [
      `SIP/2.0 ${status}`,
      ...headerLines(rq, ['via', 'v']),
      ...headerLines(rq, ['from', 'f']),
      toTagged,
      callId,
      ...headerLines(rq, ['cseq']),
      `Contact: <sip:pbx@127.0.0.1:${this.sip?.address().port ?? 0}>`,
      ...extra,
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    this.sip?.send(lines.join('\r\n'), rinfo.port, rinfo.address);
  }

  private onSip(msg: string, rinfo: RemoteInfo): void {
    const method = msg.slice(0, msg.indexOf(' '));
    if (method === 'INVITE') {
      const sdp = this.answerSdp(this.rtpPort);
      const callId = headerLines(msg, ['call-id', 'i'])[0];
      if (!this.calls.some((c) => headerLines(c.invite, ['call-id', 'i'])[0] === callId)) {
        this.calls.push({ invite: msg, ack: null, answeredAtMs: Date.now(), bye: null, byeAtMs: null });
      }
      this.reply(msg, rinfo, '180 Ringing');
      this.reply(msg, rinfo, '200 OK', ['Content-Type: application/sdp'], sdp);
    } else if (method === 'BYE') {
      const callId = headerLines(msg, ['call-id', 'i'])[0];
      const call = this.calls.find((c) => headerLines(c.invite, ['call-id', 'i'])[0] === callId);
      if (call && !call.bye) {
        call.bye = msg;
        call.byeAtMs = Date.now();
      }
      this.reply(msg, rinfo, '200 OK');
      for (const w of this.byeWaiters.splice(0)) w();
    } else if (method === 'ACK') {
      const callId = headerLines(msg, ['call-id', 'i'])[0];
      const call = this.calls.find((c) => headerLines(c.invite, ['call-id', 'i'])[0] === callId);
      if (call && !call.ack) call.ack = msg;
    } else if (!msg.startsWith('SIP/2.0')) {
      this.reply(msg, rinfo, '200 OK');
    }
  }

  /** Resolves when a BYE arrived for every call so far (or after `timeoutMs`). */
  async ended(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.calls.length === 0 || this.calls.some((c) => !c.bye)) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.byeWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.sip?.close();
    this.media?.close();
    this.sip = null;
    this.media = null;
  }
}
