import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import { Dialog } from './dialog.js';
import {
  generateTag,
  makeResponse,
  parseUri,
  stringifyUri,
  transportParam,
  type NameAddr,
  type SipRemote,
  type SipRequest,
  type SipResponse,
  type SipStack,
  type SipTransport,
} from './sip-stack.js';

/**
 * One call through the B2BUA: leg 'a' is the UAS leg toward the caller (trunk), leg 'b' the UAC
 * leg toward the callee (PBX). Each leg is its own dialog; this class relays requests and
 * responses between them, lets the delegate rewrite every SDP body (offer and answer), and
 * reports the call's life as events. The gateway ACKs each leg's 2xx itself (hop by hop), so a
 * lost ACK on one side never tears down the other.
 */
export type LegName = 'a' | 'b';
export type B2buaCallState = 'calling' | 'early' | 'confirmed' | 'terminated';

export interface B2buaTarget {
  host: string;
  port: number;
  transport: SipTransport;
}

export interface B2buaCallDelegate {
  /** Rewrite an SDP body received on `from` before it goes to the other leg; throw to refuse (488). */
  rewriteSdp(from: LegName, sdp: string, kind: 'offer' | 'answer'): string;
}

export interface B2buaCallEvents {
  progress: [{ status: number; hasSdp: boolean }];
  answered: [];
  /** A final end: reason as in CallEndedEvent, SIP status where one applies. */
  ended: [{ reason: string; sipStatus: number | null }];
}

/** Headers relayed from one leg's request to the other leg's request. */
const RELAYED_REQUEST_HEADERS = [
  'content-type',
  'supported',
  'require',
  'allow',
  'session-expires',
  'x', // Session-Expires, compact form (RFC 4028)
  'min-se',
  'authorization',
  'proxy-authorization',
  'p-asserted-identity',
  'privacy',
  'diversion',
  'reason',
  'event',
  'info-package',
  'recv-info',
  'accept',
  'subject',
  'priority',
];
/** Headers relayed from one leg's response to the other leg's response. */
const RELAYED_RESPONSE_HEADERS = [
  'content-type',
  'supported',
  'require',
  'allow',
  'session-expires',
  'x',
  'min-se',
  'www-authenticate',
  'proxy-authenticate',
  'retry-after',
  'warning',
  'reason',
  'unsupported',
  'accept',
];

function copyHeaders(from: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of names) if (from[n] !== undefined) out[n] = from[n];
  // Reliable provisional responses (100rel/PRACK) are not relayed: strip the option tag.
  for (const n of ['supported', 'require']) {
    if (typeof out[n] === 'string') {
      const v = (out[n] as string)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '' && s.toLowerCase() !== '100rel');
      if (v.length === 0) delete out[n];
      else out[n] = v.join(', ');
    }
  }
  return out;
}

const PRACK_TIMEOUT_REASON = 'SIP;cause=504;text="reliable provisional not acknowledged"';
/** Default wait for an ACK with a delayed-offer answer: 64*T1, as long as a UAS retransmits its 2xx. */
const ACK_WAIT_MS = 32_000;
const NO_ANSWER_REASON = 'SIP;cause=488;text="no SDP answer in ACK"';
const NO_PRACK_ANSWER_REASON = 'SIP;cause=488;text="no SDP answer in PRACK"';

const SESSION_EXPIRED_REASON = 'SIP;cause=408;text="session expired without refresh"';
const NO_ACK_REASON = 'SIP;cause=408;text="2xx not acknowledged"';
const NO_OFFER_REASON = 'SIP;cause=502;text="no SDP offer in the 2xx to a delayed offer"';
const NO_ANSWER_IN_2XX_REASON = 'SIP;cause=502;text="no SDP answer in the 2xx to an offer"';
const MAX_DURATION_REASON = 'Q.850;cause=16;text="maximum call duration reached"';

/**
 * The session interval of a Session-Expires header (RFC 4028, also in compact form `x`) in seconds,
 * or null when there is none or it cannot be read.
 */
export function sessionExpiresS(headers: Record<string, unknown>): number | null {
  let v = headers['session-expires'] ?? headers.x;
  if (Array.isArray(v)) v = v[0];
  if (typeof v === 'number') v = String(v);
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d{1,9})\s*(?:;|$)/.exec(v);
  const s = m ? Number(m[1]) : 0;
  return s > 0 ? s : null;
}

/** RFC 3261 timer T1 (default). */
const T1_MS = 500;
/** RFC 3261 timer T2: the longest interval between retransmissions of a 2xx to an INVITE. */
const T2_MS = 4000;

/** The option tags of a Supported/Require header value, lower case. */
export function optionTags(value: unknown): string[] {
  const raw = Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : '';
  return raw
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

export function hasSdp(m: { headers: Record<string, unknown>; content?: string }): boolean {
  const ct = m.headers['content-type'];
  return (
    typeof ct === 'string' &&
    ct.toLowerCase().startsWith('application/sdp') &&
    !!m.content &&
    m.content.length > 0
  );
}

/** 3xx redirects are not followed by the gateway: the caller learns the callee is unavailable. */
export function mapFinalStatus(status: number): number {
  if (status >= 300 && status < 400) return 480;
  return status;
}

export interface B2buaCallOptions {
  stack: SipStack;
  logger: Logger;
  invite: SipRequest; // the caller's INVITE (leg a)
  remote: SipRemote;
  target: B2buaTarget;
  delegate: B2buaCallDelegate;
  userAgent: string;
  inviteTimeoutMs: number;
  /**
   * How long to wait for the ACK to a 2xx the gateway sent to an INVITE (retransmitted meanwhile),
   * and for a delayed offer the ACK that carries the answer (default 32 s, 64*T1).
   */
  ackTimeoutMs?: number;
  /** RFC 3261 T1 for reliable provisionals toward the caller (default 500 ms). */
  timerT1Ms?: number;
  /** Extra headers on the INVITE toward leg b (e.g. the verdict header). */
  extraInviteHeaders?: Record<string, unknown>;
  /**
   * RFC 4028 supervision: when a 2xx to the INVITE, or to a re-INVITE or UPDATE (a refresh), carries
   * Session-Expires, the call is ended (BYE both legs) if no further refresh succeeds within that
   * interval. Session-Expires itself passes end to end: the endpoints refresh, voiceguard watches.
   * Default true.
   */
  enforceSessionExpiry?: boolean;
  /** End an answered call after this long (BYE both legs); 0 or absent = no limit. */
  maxDurationMs?: number;
}

export class B2buaCall extends EventEmitter<B2buaCallEvents> {
  state: B2buaCallState = 'calling';
  readonly a: Dialog;
  readonly b: Dialog;
  private readonly stack: SipStack;
  private readonly log: Logger;
  private readonly inviteA: SipRequest;
  private inviteB: SipRequest | null = null;
  private inviteTimer: NodeJS.Timeout | null = null;
  /**
   * Delayed offer (RFC 3261 13.2.1, RFC 3264): an INVITE sent without SDP gets the offer in the
   * 2xx and the answer in the ACK. The ACK toward the leg that sent the offer then waits for the
   * other leg's ACK, which carries the answer. At most one such INVITE is open at a time.
   */
  private pendingAck: { leg: LegName; seq: number; timer: NodeJS.Timeout } | null = null;
  /**
   * RFC 3262 toward the caller when its INVITE Requires 100rel: voiceguard sends the caller's
   * provisionals reliably itself (RSeq, retransmitted until PRACK), one at a time; later ones and a
   * 2xx wait in `reliableQueue`.
   */
  private readonly reliableA: boolean;
  private rseq = 0;
  private readonly prackedRseqs = new Set<number>();
  private reliablePending: { rseq: number; timer: NodeJS.Timeout } | null = null;
  private readonly reliableQueue: SipResponse[] = [];
  /**
   * A delayed-offer INVITE from a 100rel caller: the PBX's first early SDP goes to the caller in a
   * reliable provisional, which makes it the offer on leg a (RFC 3262 section 5); the caller answers
   * in its PRACK. That answer (rewritten for leg b) is what the ACK to the PBX's 2xx carries, and
   * the 2xx to the caller has no SDP: its offer/answer is done.
   */
  private earlyOfferA: 'none' | 'sent' | 'answered' = 'none';
  /**
   * RFC 3262 toward the PBX: the INVITE to the PBX lists 100rel in Supported when it carries the
   * offer, or when it is a delayed offer from a caller that Requires 100rel; voiceguard PRACKs the
   * PBX's reliable provisionals itself (each relayed once, as an ordinary or, to a 100rel caller, a
   * new reliable provisional). The RSeq of the last one accepted. A delayed-offer INVITE from a
   * caller without 100rel does not offer it: a PRACK to an offer must carry an answer, and only a
   * caller that answers in its own PRACK can give one.
   */
  private readonly reliableB: boolean;
  private lastRseqB: number | null = null;
  private earlyAnswerB: string | null = null;
  /**
   * A reliable provisional from the PBX that carried the offer to a delayed-offer INVITE: its PRACK
   * must carry the answer, so it waits for the caller's PRACK (see onEarlyAnswer). Once sent,
   * `answeredInPrackB` says the offer/answer is done and the ACK to the PBX's 2xx has no SDP.
   */
  private heldPrackB: { rseq: number; cseq: number } | null = null;
  private answeredInPrackB = false;
  /** Session-timer supervision (see enforceSessionExpiry) and the maximum-duration timer. */
  private sessionTimer: NodeJS.Timeout | null = null;
  private maxDurationTimer: NodeJS.Timeout | null = null;
  /** ACKs sent per leg and CSeq, resent when that 2xx is retransmitted. */
  private readonly sentAcks = new Map<string, SipRequest>();
  /**
   * 2xx responses the gateway sent to an INVITE (the caller's, or a re-INVITE from either leg) and
   * not yet ACKed, by leg and CSeq: RFC 3261 13.3.1.4 makes the UAS core retransmit them (T1
   * doubling up to T2) until the ACK comes, on every transport (a UDP hop may lie beyond), and end
   * the session with a BYE when none comes in 64*T1 (sip.ackTimeoutMs). The stack (node-sip) sends
   * a 2xx once and leaves this to its user.
   */
  private readonly unacked2xx = new Map<string, NodeJS.Timeout>();
  /** The PBX sent SDP in a provisional response (see the check for a 2xx without an offer). */
  private calleeSdpSeen = false;
  /**
   * To an INVITE with an offer: the answer (rewritten for the caller) that the PBX put in a
   * provisional relayed unreliably, i.e. to a caller without 100rel. RFC 3261 13.2.1 makes the 2xx
   * the answer; a PBX whose 2xx then has no SDP gets it completed from here (see onInviteResponse).
   */
  private unreliableAnswerA: string | null = null;
  private aFinalSent = false;

  constructor(private readonly opts: B2buaCallOptions) {
    super();
    this.stack = opts.stack;
    this.log = opts.logger;
    this.inviteA = opts.invite;
    const rq = opts.invite;
    this.reliableA = optionTags(rq.headers.require).includes('100rel');
    this.reliableB = hasSdp(rq) || this.reliableA;
    this.rseq = 1 + Math.floor(Math.random() * 0x3fffffff);
    // Each leg's Contact names the transport it runs on, and over TLS the TLS listening port. A
    // sips: call (served only TLS in and TLS out) gets sips: Contacts on both legs (RFC 3261 12.1.1,
    // without the deprecated ;transport=tls: RFC 5630 3.2).
    const aProto = opts.remote.protocol.toLowerCase();
    const aLegTransport: SipTransport = aProto === 'tcp' || aProto === 'tls' ? aProto : 'udp';
    const sips = /^sips:/i.test(rq.uri);
    const contactOf = (t: SipTransport) =>
      sips
        ? `sips:voiceguard@${opts.stack.publicAddress}:${opts.stack.tlsPort ?? opts.stack.port}`
        : `sip:voiceguard@${opts.stack.publicAddress}:${t === 'tls' ? (opts.stack.tlsPort ?? opts.stack.port) : opts.stack.port}${transportParam(t)}`;
    const bTransport = transportParam(opts.target.transport);
    this.a = new Dialog({
      callId: rq.headers['call-id'],
      local: { ...rq.headers.to, params: { ...rq.headers.to.params, tag: generateTag() } },
      remote: rq.headers.from,
      remoteTarget: rq.headers.contact?.[0]?.uri ?? rq.headers.from.uri,
      routeSet: Array.isArray(rq.headers['record-route']) ? [...rq.headers['record-route']] : [],
      localSeq: Math.floor(Math.random() * 10000),
      contact: contactOf(aLegTransport),
    });
    // The b-leg Call-ID is derived from the a-leg one, so a caller retrying after a 401/407 with
    // credentials reaches the PBX in the same Call-ID it challenged (digest state can be per call).
    const bCallId = createHash('sha256')
      .update(`vg:${rq.headers['call-id']}:${rq.headers.from.params.tag ?? ''}`)
      .digest('hex')
      .slice(0, 32);
    const ruri = parseUri(rq.uri);
    const authorized =
      rq.headers.authorization !== undefined || rq.headers['proxy-authorization'] !== undefined;
    const pbxUri = `sip:${opts.target.host}:${opts.target.port}${bTransport}`;
    // With credentials the Request-URI must stay as the caller signed it (digest covers it), so the
    // PBX is reached through a loose route instead.
    const bRequestUri =
      authorized || !ruri
        ? rq.uri
        : stringifyUri({
            ...ruri,
            host: opts.target.host,
            port: opts.target.port,
            params: opts.target.transport === 'udp' ? {} : { transport: opts.target.transport },
          });
    this.b = new Dialog({
      callId: bCallId,
      local: { ...rq.headers.from, params: { tag: generateTag() } },
      remote: { ...rq.headers.to, params: {} },
      remoteTarget: bRequestUri,
      routeSet: authorized ? [{ uri: `${pbxUri};lr`, params: {} }] : [],
      localSeq: rq.headers.cseq.seq,
      contact: contactOf(opts.target.transport),
    });
  }

  get callIdA(): string {
    return this.a.callId;
  }
  get callIdB(): string {
    return this.b.callId;
  }

  /** Send the INVITE toward leg b. Throws SdpError-like errors from the delegate before anything is sent. */
  start(): void {
    const rq = this.inviteA;
    let content = rq.content;
    if (hasSdp(rq)) content = this.opts.delegate.rewriteSdp('a', rq.content ?? '', 'offer');
    const mf = Number(rq.headers['max-forwards'] ?? 70);
    const headers: Record<string, unknown> = {
      ...copyHeaders(rq.headers, RELAYED_REQUEST_HEADERS),
      'max-forwards': Number.isFinite(mf) ? mf - 1 : 69,
      'user-agent': this.opts.userAgent,
      ...(this.opts.extraInviteHeaders ?? {}),
    };
    if (this.reliableB) {
      const tags = optionTags(headers.supported);
      headers.supported = [...tags, '100rel'].join(', ');
    }
    const invite = this.b.makeRequest('INVITE', headers, content);
    invite.headers.cseq = { seq: rq.headers.cseq.seq, method: 'INVITE' };
    this.b.localSeq = rq.headers.cseq.seq;
    this.inviteB = invite;
    this.inviteTimer = setTimeout(() => this.onInviteTimeout(), this.opts.inviteTimeoutMs);
    this.stack.send(invite, (rs) => this.onInviteResponse(rs));
  }

  /** SDP from the callee in a response to the INVITE: to an INVITE without SDP, its offer (or a repeat of it). */
  private calleeSdpKind(): 'offer' | 'answer' {
    return hasSdp(this.inviteA) ? 'answer' : 'offer';
  }

  private onInviteResponse(rs: SipResponse): void {
    if (rs.status < 200 && rs.status === 100) return;
    if (this.state === 'terminated') {
      // A 2xx after we gave up (CANCEL race, timeout): complete and end that dialog.
      if (rs.status >= 200 && rs.status < 300) {
        this.b.updateFromResponse(rs);
        this.stack.send(this.b.makeAck(rs.headers.cseq.seq));
        this.stack.send(this.b.makeRequest('BYE', { reason: 'SIP;cause=487;text="caller cancelled"' }));
      }
      return;
    }
    if (rs.status < 200) {
      this.b.updateFromResponse(rs);
      if (optionTags(rs.headers.require).includes('100rel') && !this.prackB(rs)) return;
      if (this.state === 'calling') this.state = 'early';
      const sdp = hasSdp(rs);
      let content: string | undefined;
      if (sdp) {
        try {
          content = this.opts.delegate.rewriteSdp('b', rs.content ?? '', this.calleeSdpKind());
        } catch (err) {
          this.log.warn(
            { event: 'sip.sdp_error', err: (err as Error).message },
            'early-media SDP refused; relayed without body',
          );
        }
      }
      if (content !== undefined && this.reliableA && !hasSdp(this.inviteA)) {
        // The offer to the caller (see earlyOfferA); later early SDP would be a second offer.
        if (this.earlyOfferA === 'none') this.earlyOfferA = 'sent';
        else content = undefined;
      }
      if (content !== undefined) {
        this.calleeSdpSeen = true;
        if (hasSdp(this.inviteA) && !this.reliableA) this.unreliableAnswerA = content;
      }
      this.sendA(rs.status, rs.reason, rs, content);
      this.emit('progress', { status: rs.status, hasSdp: content !== undefined });
      return;
    }
    this.clearInviteTimer();
    if (rs.status < 300) {
      this.b.updateFromResponse(rs);
      if (
        !hasSdp(this.inviteA) &&
        !hasSdp(rs) &&
        this.earlyOfferA === 'none' &&
        !this.answeredInPrackB &&
        !this.calleeSdpSeen
      ) {
        // A delayed offer must be answered with an offer in the 2xx (or in a reliable provisional,
        // RFC 3261 13.2.1, RFC 3262): without one no media could ever flow, and no RTP timeout
        // would end the call. The PBX's dialog is completed and ended, the caller gets 502.
        this.refuse2xx(
          rs,
          'sip.no_offer_in_2xx',
          'the PBX answered a delayed offer without an SDP offer: 502 to the caller, BYE to the PBX',
          NO_OFFER_REASON,
        );
        return;
      }
      let answerToA: string | undefined;
      if (hasSdp(this.inviteA) && !hasSdp(rs)) {
        if (!this.calleeSdpSeen) {
          // The caller's offer must be answered in the 2xx (or a reliable provisional, RFC 3261
          // 13.2.1, RFC 3262): relayed without one, the caller has no answer and no media could
          // flow. The PBX's dialog is completed and ended, the caller gets 502.
          this.refuse2xx(
            rs,
            'sip.no_answer_in_2xx',
            'the PBX answered an offer with a 2xx without SDP: 502 to the caller, BYE to the PBX',
            NO_ANSWER_IN_2XX_REASON,
          );
          return;
        }
        if (this.unreliableAnswerA !== null) {
          // The answer came only in an unreliable provisional: the caller gets it again in the 2xx,
          // where RFC 3261 wants it. (To a 100rel caller it went reliably and is final already.)
          this.log.info(
            { event: 'sip.answer_from_provisional', status: rs.status },
            "the PBX's 2xx has no SDP: the caller's 2xx carries the answer of its earlier provisional",
          );
          answerToA = this.unreliableAnswerA;
        }
      }
      const answer = this.earlyAnswerB ?? undefined;
      // After an offer/answer in a reliable provisional and voiceguard's PRACK, SDP in the 2xx is no offer.
      const offerIn2xx = !hasSdp(this.inviteA) && hasSdp(rs) && !this.answeredInPrackB;
      if (!this.ack2xx('b', rs.headers.cseq.seq, offerIn2xx, answer)) return;
      let content: string | undefined = answerToA ?? rs.content;
      if (hasSdp(rs)) {
        try {
          // Delayed offer: the 2xx carries the PBX's offer, answered in the caller's ACK, or repeats
          // the offer of a reliable provisional answered in PRACK (rewritten alike, not relayed).
          content = this.opts.delegate.rewriteSdp('b', rs.content ?? '', this.calleeSdpKind());
        } catch (err) {
          this.log.warn(
            { event: 'sip.sdp_error', err: (err as Error).message },
            'answer SDP refused; ending call',
          );
          this.releaseHeldAck();
          this.stack.send(this.b.makeRequest('BYE', { reason: 'SIP;cause=488;text="no acceptable codec"' }));
          this.finalA(488, 'Not Acceptable Here');
          this.end('error', 488);
          return;
        }
      }
      this.state = 'confirmed';
      this.observeSessionRefresh(rs);
      const maxMs = this.opts.maxDurationMs ?? 0;
      if (maxMs > 0) {
        this.maxDurationTimer = setTimeout(() => {
          this.log.info(
            { event: 'sip.max_duration', maxDurationMs: maxMs },
            'maximum call duration reached; ending the call',
          );
          this.hangup('max-duration', { a: MAX_DURATION_REASON, b: MAX_DURATION_REASON });
        }, maxMs);
        this.maxDurationTimer.unref();
      }
      // After an offer/answer in a reliable provisional and its PRACK, the caller's 2xx has no SDP.
      this.sendA(
        200,
        rs.reason,
        rs,
        this.earlyOfferA === 'none' ? content : undefined,
        answerToA !== undefined,
      );
      this.aFinalSent = true;
      this.emit('answered');
      return;
    }
    const status = mapFinalStatus(rs.status);
    this.sendA(status, status === rs.status ? rs.reason : undefined, rs, undefined);
    this.aFinalSent = true;
    this.end('rejected', rs.status);
  }

  /** A PBX 2xx that can carry no media: ACK it and BYE (with `reason`) to the PBX, 502 to the caller. */
  private refuse2xx(rs: SipResponse, event: string, message: string, reason: string): void {
    this.log.warn({ event, status: rs.status }, message);
    this.sendAck('b', rs.headers.cseq.seq);
    this.stack.send(this.b.makeRequest('BYE', { reason }), () => undefined);
    this.finalA(502, 'Bad Gateway', { reason });
    this.end('error', 502);
  }

  private sendA(
    status: number,
    reason: string | undefined,
    from: SipResponse | null,
    content: string | undefined,
    /** `content` is SDP that `from` did not carry (its Content-Type is not copied). */
    ownSdp = false,
  ): void {
    const headers: Record<string, unknown> = from ? copyHeaders(from.headers, RELAYED_RESPONSE_HEADERS) : {};
    headers.to = this.a.local;
    headers.server = this.opts.userAgent;
    if (status < 300) headers.contact = [{ uri: this.a.contact, params: {} }];
    if (content === undefined) {
      delete headers['content-type'];
    } else if (ownSdp) {
      headers['content-type'] = 'application/sdp';
    }
    if (this.reliableA && status > 100 && status < 200) {
      headers.require = '100rel';
      headers.RSeq = String(this.rseq++); // key spelled as RFC 3262 writes it: node-sip prints names as keyed
    }
    const resp = makeResponse(this.inviteA, status, reason, { headers, content });
    if (this.reliableA) this.sendReliablyA(resp);
    else this.sendResponse('a', resp);
  }

  /**
   * Send a response on `leg`; a 2xx to an INVITE is retransmitted until that leg ACKs it (see
   * unacked2xx), and without an ACK within sip.ackTimeoutMs the call is ended (BYE both legs).
   */
  private sendResponse(leg: LegName, resp: SipResponse): void {
    this.stack.send(resp);
    const cseq = resp.headers.cseq;
    if (resp.status < 200 || resp.status >= 300 || String(cseq?.method).toUpperCase() !== 'INVITE') return;
    const key = `${leg}:${cseq.seq}`;
    const old = this.unacked2xx.get(key);
    if (old) clearTimeout(old);
    const t1 = this.opts.timerT1Ms ?? T1_MS;
    const limit = this.opts.ackTimeoutMs ?? ACK_WAIT_MS;
    const started = Date.now();
    let interval = t1;
    const tick = (): void => {
      if (this.unacked2xx.get(key) !== timer) return;
      if (this.state === 'terminated') {
        this.unacked2xx.delete(key);
        return;
      }
      const elapsed = Date.now() - started;
      if (elapsed >= limit) {
        this.unacked2xx.delete(key);
        // A held delayed-offer ACK has its own timeout, which ends the call with its own Reason.
        if (this.pendingAck) return;
        this.log.warn(
          { event: 'sip.ack_timeout', leg, cseq: cseq.seq, waitedMs: elapsed },
          'no ACK for a 2xx to an INVITE; ending the call',
        );
        this.hangup('ack-timeout', { a: NO_ACK_REASON, b: NO_ACK_REASON });
        return;
      }
      this.stack.send(resp);
      interval = Math.min(interval * 2, Math.max(T2_MS, t1));
      timer = setTimeout(tick, Math.min(interval, Math.max(1, limit - elapsed)));
      timer.unref();
      this.unacked2xx.set(key, timer);
    };
    let timer = setTimeout(tick, Math.min(t1, limit));
    timer.unref();
    this.unacked2xx.set(key, timer);
  }

  /**
   * Leg a with 100rel: a provisional goes out only when no other awaits its PRACK, and is then
   * retransmitted (T1 doubling) until PRACKed or 64*T1 pass; a 2xx waits for the PRACKs; a
   * non-2xx final goes at once and ends the reliability.
   */
  private sendReliablyA(resp: SipResponse): void {
    if (resp.status >= 300) {
      this.stopReliable();
      this.stack.send(resp);
      return;
    }
    if (this.reliablePending) {
      this.reliableQueue.push(resp);
      return;
    }
    if (resp.status >= 200) {
      this.sendResponse('a', resp);
      return;
    }
    this.stack.send(resp);
    const rseq = Number(resp.headers.RSeq);
    const started = Date.now();
    const t1 = this.opts.timerT1Ms ?? T1_MS;
    let interval = t1;
    const tick = (): void => {
      if (this.reliablePending?.rseq !== rseq || this.state === 'terminated') return;
      if (Date.now() - started >= 64 * t1) {
        this.log.warn(
          { event: 'sip.prack_timeout', rseq },
          'reliable provisional never PRACKed: 504 to the caller',
        );
        // The PBX may have answered meanwhile: its 2xx waited here, never reached the caller.
        const answered = this.reliableQueue.some((r) => r.status >= 200 && r.status < 300);
        this.stopReliable();
        if (answered) {
          this.releaseHeldAck();
          this.stack.send(this.b.makeRequest('BYE', { reason: PRACK_TIMEOUT_REASON }), () => undefined);
          this.aFinalSent = false;
        } else {
          this.cancelB();
        }
        this.finalA(504, 'Reliable Provisional Not Acknowledged');
        this.end('error', 504);
        return;
      }
      this.stack.send(resp);
      interval *= 2;
      this.reliablePending.timer = setTimeout(tick, interval);
    };
    this.reliablePending = { rseq, timer: setTimeout(tick, interval) };
  }

  private stopReliable(): void {
    if (this.reliablePending) clearTimeout(this.reliablePending.timer);
    this.reliablePending = null;
    this.reliableQueue.length = 0;
  }

  /** PRACK from the caller: RAck names the RSeq and the INVITE's CSeq. */
  private onPrack(rq: SipRequest): void {
    const m = /^\s*(\d+)\s+(\d+)\s+INVITE\s*$/i.exec(String(rq.headers.rack ?? ''));
    const rseq = m ? Number(m[1]) : NaN;
    const matches = m !== null && Number(m[2]) === this.inviteA.headers.cseq.seq;
    if (matches && this.reliablePending?.rseq === rseq) {
      clearTimeout(this.reliablePending.timer);
      this.reliablePending = null;
      this.prackedRseqs.add(rseq);
      this.stack.send(makeResponse(rq, 200));
      if (this.earlyOfferA === 'sent') this.onEarlyAnswer(rq);
      // Send what waited: provisionals (each becomes the one pending) and a 2xx.
      while (!this.reliablePending && this.reliableQueue.length > 0)
        this.sendReliablyA(this.reliableQueue.shift()!);
      return;
    }
    if (matches && this.prackedRseqs.has(rseq)) {
      this.stack.send(makeResponse(rq, 200)); // a retransmitted PRACK for an acknowledged response
      return;
    }
    this.log.info(
      { event: 'sip.prack_unmatched', rack: rq.headers.rack ?? null },
      'PRACK matches no reliable provisional: 481',
    );
    this.stack.send(makeResponse(rq, 481));
  }

  /**
   * The PRACK of the reliable provisional that carried the offer to the caller: its SDP is the
   * answer. Kept for the ACK to the PBX's 2xx, or sent now if that ACK is held waiting for it.
   * Without an answer (or with one refused) the held ACK times out and the call ends, as for a
   * delayed-offer ACK without an answer.
   */
  private onEarlyAnswer(rq: SipRequest): void {
    let answer: string | null = null;
    if (!hasSdp(rq)) {
      this.log.warn({ event: 'sip.prack_without_answer' }, 'PRACK without the SDP answer to the early offer');
    } else {
      try {
        answer = this.opts.delegate.rewriteSdp('a', rq.content ?? '', 'answer');
      } catch (err) {
        this.log.warn({ event: 'sip.sdp_error', err: (err as Error).message }, 'SDP answer in PRACK refused');
      }
    }
    const held = this.heldPrackB;
    if (held) {
      this.heldPrackB = null;
      if (answer === null) {
        // The PBX's offer cannot be answered: end the attempt on both legs.
        this.cancelB();
        this.finalA(488, 'Not Acceptable Here', { reason: NO_PRACK_ANSWER_REASON });
        this.end('error', 488);
        return;
      }
      this.earlyOfferA = 'answered';
      this.answeredInPrackB = true;
      this.sendPrackB(held.rseq, held.cseq, answer);
      return;
    }
    if (answer === null) return;
    this.earlyAnswerB = answer;
    this.earlyOfferA = 'answered';
    if (this.pendingAck?.leg === 'b') this.releaseHeldAck(this.earlyAnswerB);
  }

  /**
   * A reliable provisional from the PBX: PRACK it when its RSeq is the first or one above the last
   * (RFC 3262 section 4) and say it may be relayed; a retransmission, or one out of order, is
   * neither PRACKed nor relayed (the PBX retransmits until PRACKed).
   */
  private prackB(rs: SipResponse): boolean {
    const raw = String(rs.headers.rseq ?? '').trim();
    const rseq = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(rseq) || rseq < 1 || rseq > 0xffffffff) {
      this.log.warn(
        { event: 'sip.rseq_invalid', rseq: rs.headers.rseq ?? null },
        'reliable provisional from the PBX without a valid RSeq: not PRACKed, not relayed',
      );
      return false;
    }
    if (this.lastRseqB !== null && rseq !== this.lastRseqB + 1) {
      if (rseq > this.lastRseqB + 1)
        this.log.info(
          { event: 'sip.rseq_out_of_order', rseq, last: this.lastRseqB },
          'reliable provisional from the PBX out of order: waiting for its retransmission in order',
        );
      return false;
    }
    this.lastRseqB = rseq;
    if (!hasSdp(this.inviteA) && hasSdp(rs) && this.earlyOfferA === 'none' && !this.answeredInPrackB) {
      // The offer to a delayed-offer INVITE: its PRACK carries the caller's answer, later.
      this.heldPrackB = { rseq, cseq: rs.headers.cseq.seq };
      return true;
    }
    this.sendPrackB(rseq, rs.headers.cseq.seq);
    return true;
  }

  private sendPrackB(rseq: number, cseq: number, answer?: string): void {
    const prack = this.b.makeRequest('PRACK', { RAck: `${rseq} ${cseq} INVITE` }, answer);
    delete prack.headers.contact; // PRACK is no target refresh
    if (answer === undefined) delete prack.headers['content-type'];
    else prack.headers['content-type'] = 'application/sdp';
    this.stack.send(prack, (r) => {
      if (r.status >= 300)
        this.log.warn({ event: 'sip.prack_rejected', status: r.status }, 'the PBX refused our PRACK');
    });
  }

  /** A final non-2xx toward the caller (if none was sent yet). */
  private finalA(status: number, reason?: string, extra: Record<string, unknown> = {}): void {
    if (this.aFinalSent) return;
    this.aFinalSent = true;
    this.stopReliable();
    const resp = makeResponse(this.inviteA, status, reason, {
      headers: { to: this.a.local, server: this.opts.userAgent, ...extra },
    });
    this.stack.send(resp);
  }

  private onInviteTimeout(): void {
    this.inviteTimer = null;
    if (this.state !== 'calling' && this.state !== 'early') return;
    this.log.info({ event: 'sip.invite_timeout' }, 'callee did not answer in time');
    this.cancelB();
    this.finalA(408, 'Request Timeout');
    this.end('timeout', 408);
  }

  private cancelB(): void {
    const inv = this.inviteB;
    if (!inv) return;
    const cancel: SipRequest = {
      method: 'CANCEL',
      uri: inv.uri,
      headers: {
        via: [inv.headers.via[0]],
        to: { ...inv.headers.to, params: {} },
        from: inv.headers.from,
        'call-id': inv.headers['call-id'],
        cseq: { seq: inv.headers.cseq.seq, method: 'CANCEL' },
        'max-forwards': 70,
      },
    };
    if (inv.headers.route) cancel.headers.route = inv.headers.route;
    this.stack.send(cancel, () => undefined);
  }

  /** The caller's CANCEL (the stack gave it its own transaction): 200 to it, 487 to the INVITE. */
  onCancel(rq: SipRequest): void {
    this.stack.send(makeResponse(rq, 200));
    if (this.state === 'calling' || this.state === 'early') {
      this.cancelB();
      this.finalA(487, 'Request Terminated');
      this.end('cancel', 487);
    }
  }

  /** An in-dialog request from leg `from`. */
  onRequest(from: LegName, rq: SipRequest): void {
    const to: LegName = from === 'a' ? 'b' : 'a';
    const src = from === 'a' ? this.a : this.b;
    const dst = from === 'a' ? this.b : this.a;
    if (rq.method === 'ACK') {
      // Each leg's 2xx is ACKed by us; only an ACK that carries a delayed-offer answer is used.
      this.onAck(from, rq);
      return;
    }
    if (this.state === 'terminated') {
      this.stack.send(makeResponse(rq, rq.method === 'BYE' ? 200 : 481));
      return;
    }
    if (rq.method === 'PRACK') {
      if (from === 'a' && this.reliableA) this.onPrack(rq);
      else this.stack.send(makeResponse(rq, 481));
      return;
    }
    if (rq.method === 'BYE') {
      this.stack.send(makeResponse(rq, 200));
      if (this.state === 'confirmed') {
        this.stack.send(dst.makeRequest('BYE', copyHeaders(rq.headers, ['reason'])), () => undefined);
      } else if (from === 'b') {
        // The callee hung up an early dialog: the caller gets a final response.
        this.finalA(487, 'Request Terminated');
      }
      this.end(from === 'a' ? 'bye-caller' : 'bye-callee', null);
      return;
    }
    if (
      this.state !== 'confirmed' &&
      rq.method !== 'UPDATE' &&
      rq.method !== 'INFO' &&
      rq.method !== 'OPTIONS'
    ) {
      this.stack.send(makeResponse(rq, 491));
      return;
    }
    if (rq.method === 'INVITE') this.stack.send(makeResponse(rq, 100));
    const isOfferMethod = rq.method === 'INVITE' || rq.method === 'UPDATE';
    if (isOfferMethod) src.updateTarget(rq);
    let content = rq.content;
    if (isOfferMethod && hasSdp(rq)) {
      try {
        content = this.opts.delegate.rewriteSdp(from, rq.content ?? '', 'offer');
      } catch (err) {
        this.log.warn({ event: 'sip.sdp_error', err: (err as Error).message }, 'in-dialog offer refused');
        this.stack.send(makeResponse(rq, 488));
        return;
      }
    }
    const out = dst.makeRequest(
      rq.method,
      { ...copyHeaders(rq.headers, RELAYED_REQUEST_HEADERS), 'user-agent': this.opts.userAgent },
      content,
    );
    this.stack.send(out, (rs) => {
      if (rs.status < 200) return;
      const offerIn2xx = rq.method === 'INVITE' && !hasSdp(rq) && hasSdp(rs);
      if (rq.method === 'INVITE' && rs.status < 300) {
        dst.updateFromResponse(rs);
        if (!this.ack2xx(to, rs.headers.cseq.seq, offerIn2xx)) return;
      }
      if (isOfferMethod && rs.status < 300 && this.state === 'confirmed') this.observeSessionRefresh(rs);
      if (
        rs.status < 300 &&
        !hasSdp(rs) &&
        (rq.method === 'INVITE' || (rq.method === 'UPDATE' && hasSdp(rq)))
      ) {
        // An offer needs its answer in the 2xx, and a re-INVITE without SDP needs an offer there
        // (RFC 3261 13.2.1, 14; RFC 3311): relayed bare, the sender would be left with an offer
        // nobody answered, or with an ACK owing an answer to nothing. The other leg's 2xx is ACKed
        // above and its session stays as it was; the sender gets 502, which also leaves its
        // session as it was (RFC 3261 14.1), so the call goes on with the media it had.
        const offered = hasSdp(rq);
        this.log.warn(
          {
            event: offered ? 'sip.no_answer_in_2xx' : 'sip.no_offer_in_2xx',
            status: rs.status,
            method: rq.method,
            leg: to,
            inDialog: true,
          },
          `the ${to === 'b' ? 'PBX' : 'caller'} answered an in-dialog ${rq.method} ${offered ? 'offer' : 'without an offer'} with a 2xx without SDP: 502 to the ${from === 'a' ? 'caller' : 'PBX'}, the call goes on unchanged`,
        );
        const reason = offered ? NO_ANSWER_IN_2XX_REASON : NO_OFFER_REASON;
        this.sendResponse(from, makeResponse(rq, 502, 'Bad Gateway', { headers: { reason } }));
        return;
      }
      let body: string | undefined;
      if (isOfferMethod && rs.status < 300 && hasSdp(rs)) {
        try {
          body = this.opts.delegate.rewriteSdp(to, rs.content ?? '', offerIn2xx ? 'offer' : 'answer');
        } catch (err) {
          this.log.warn({ event: 'sip.sdp_error', err: (err as Error).message }, 'in-dialog answer refused');
          this.stack.send(makeResponse(rq, 488));
          return;
        }
      } else if (!isOfferMethod && rs.content) {
        body = rs.content;
      }
      const headers = copyHeaders(rs.headers, RELAYED_RESPONSE_HEADERS);
      if (body === undefined) delete headers['content-type'];
      if (rs.status < 300) headers.contact = [{ uri: src.contact, params: {} }];
      this.sendResponse(
        from,
        makeResponse(rq, mapFinalStatus(rs.status), rs.reason, { headers, content: body }),
      );
    });
  }

  /**
   * End the call from the gateway's side: BYE both legs once confirmed (with a Reason per leg),
   * or CANCEL the callee and reject the caller while still ringing.
   */
  hangup(reason: string, reasons: { a?: string; b?: string } = {}, rejectStatus = 480): void {
    if (this.state === 'terminated') return;
    if (this.state === 'confirmed') {
      this.stack.send(this.a.makeRequest('BYE', reasons.a ? { reason: reasons.a } : {}), () => undefined);
      this.stack.send(this.b.makeRequest('BYE', reasons.b ? { reason: reasons.b } : {}), () => undefined);
    } else {
      this.cancelB();
      this.finalA(rejectStatus, undefined, reasons.a ? { reason: reasons.a } : {});
    }
    this.end(reason, null);
  }

  /** Reject before anything was sent toward leg b. */
  reject(status: number, reason: string): void {
    this.finalA(status);
    this.end(reason, status);
  }

  /**
   * ACK the 2xx from `leg` to our INVITE with CSeq `seq`: now, or, when it carries the offer of a
   * delayed-offer INVITE (`offerIn2xx`), once the other leg's ACK brings the answer. False for a
   * retransmitted 2xx (its ACK is resent, or still held): the caller has nothing more to do.
   */
  private ack2xx(leg: LegName, seq: number, offerIn2xx: boolean, answer?: string): boolean {
    const sent = this.sentAcks.get(`${leg}:${seq}`);
    if (sent) {
      this.stack.send(sent); // our ACK was lost
      return false;
    }
    if (this.pendingAck?.leg === leg && this.pendingAck.seq === seq) return false;
    if (offerIn2xx && answer !== undefined)
      this.sendAck(leg, seq, answer); // answered in a PRACK
    else if (offerIn2xx && !this.pendingAck) this.holdAck(leg, seq);
    else this.sendAck(leg, seq);
    return true;
  }

  /** ACK a 2xx from `leg` now (optionally with the SDP answer) and remember it for retransmissions. */
  private sendAck(leg: LegName, seq: number, answer?: string): void {
    const dialog = leg === 'a' ? this.a : this.b;
    const ack = dialog.makeAck(seq, answer);
    this.sentAcks.set(`${leg}:${seq}`, ack);
    this.stack.send(ack);
  }

  /** Hold the ACK for `leg`'s 2xx, which carried an offer, until the other leg's ACK brings the answer. */
  private holdAck(leg: LegName, seq: number): void {
    const timer = setTimeout(() => {
      if (this.pendingAck?.timer !== timer) return;
      this.log.warn(
        { event: 'sip.ack_timeout', leg: leg === 'a' ? 'b' : 'a' },
        'no ACK with the SDP answer to a delayed offer; ending the call',
      );
      this.releaseHeldAck();
      this.hangup('error', { a: NO_ANSWER_REASON, b: NO_ANSWER_REASON });
    }, this.opts.ackTimeoutMs ?? ACK_WAIT_MS);
    timer.unref();
    this.pendingAck = { leg, seq, timer };
  }

  /** Send the held ACK: with the answer, or without a body when the call is being torn down. */
  private releaseHeldAck(answer?: string): void {
    const p = this.pendingAck;
    if (!p) return;
    clearTimeout(p.timer);
    this.pendingAck = null;
    this.sendAck(p.leg, p.seq, answer);
  }

  private onAck(from: LegName, rq: SipRequest): void {
    const key = `${from}:${Number(rq.headers.cseq?.seq)}`;
    const unacked = this.unacked2xx.get(key);
    if (unacked) {
      clearTimeout(unacked);
      this.unacked2xx.delete(key);
    }
    const p = this.pendingAck;
    if (!p || p.leg === from || this.state === 'terminated') return;
    let answer: string | undefined;
    if (hasSdp(rq)) {
      try {
        answer = this.opts.delegate.rewriteSdp(from, rq.content ?? '', 'answer');
      } catch (err) {
        this.log.warn(
          { event: 'sip.sdp_error', err: (err as Error).message },
          'SDP answer in ACK refused; ending call',
        );
      }
    } else {
      this.log.warn(
        { event: 'sip.ack_without_answer', leg: from },
        'ACK without the SDP answer to a delayed offer; ending call',
      );
    }
    this.releaseHeldAck(answer);
    if (answer === undefined) this.hangup('error', { a: NO_ANSWER_REASON, b: NO_ANSWER_REASON });
  }

  /**
   * A 2xx to the INVITE or to a refresh (re-INVITE, UPDATE): with Session-Expires, the session now
   * expires that many seconds from now unless refreshed again; without it, it has no expiry
   * (RFC 4028 section 7.2). At expiry both legs get a BYE. The endpoints' own non-refresher sends
   * its BYE earlier (interval minus min(32 s, interval/3)), so this only ends sessions both
   * endpoints have lost, e.g. after a failover that swallowed the BYE of a call on hold.
   */
  private observeSessionRefresh(rs: SipResponse): void {
    if (this.opts.enforceSessionExpiry === false) return;
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    this.sessionTimer = null;
    const intervalS = sessionExpiresS(rs.headers);
    // Beyond ~23 days a Node timer overflows; such a session is not supervised.
    if (intervalS === null || intervalS > 2_000_000) return;
    this.sessionTimer = setTimeout(() => {
      this.sessionTimer = null;
      this.log.warn(
        { event: 'sip.session_expired', intervalS },
        'no session refresh within Session-Expires; ending the call',
      );
      this.hangup('session-expired', { a: SESSION_EXPIRED_REASON, b: SESSION_EXPIRED_REASON });
    }, intervalS * 1000);
    this.sessionTimer.unref();
  }

  private clearInviteTimer(): void {
    if (this.inviteTimer) clearTimeout(this.inviteTimer);
    this.inviteTimer = null;
  }

  private end(reason: string, sipStatus: number | null): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.clearInviteTimer();
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    if (this.maxDurationTimer) clearTimeout(this.maxDurationTimer);
    this.sessionTimer = this.maxDurationTimer = null;
    if (this.pendingAck) clearTimeout(this.pendingAck.timer);
    this.pendingAck = null;
    for (const t of this.unacked2xx.values()) clearTimeout(t);
    this.unacked2xx.clear();
    this.stopReliable();
    this.emit('ended', { reason, sipStatus });
  }
}

export type { NameAddr };
