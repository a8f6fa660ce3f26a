import type { Logger } from '../log.js';
import { B2buaCall, optionTags, type B2buaCallOptions, type LegName } from './b2bua-call.js';
import { targetProblem } from './dialog.js';
import {
  generateTag,
  makeResponse,
  parseUri,
  SipStack,
  type MalformedSip,
  type SipRemote,
  type SipRequest,
  type SipResponse,
  type SipTlsOptions,
  type SipTransport,
} from './sip-stack.js';

/**
 * The gateway's SIP endpoint: one stack (UDP, TCP, TLS), out-of-dialog handling (INVITE → the
 * delegate, OPTIONS keepalive → 200, Max-Forwards 0 → 483, draining → 503) and dispatch of
 * in-dialog requests to their B2buaCall by Call-ID. It decides nothing about policy or routing:
 * `onInvite` hands every new INVITE to the gateway.
 */
export interface B2buaOptions {
  host: string;
  port: number;
  publicAddress: string;
  transports: readonly SipTransport[];
  /** Certificate and verification settings; required when transports has tls. */
  tls?: SipTlsOptions | null;
  userAgent: string;
  logger: Logger;
  onInvite(rq: SipRequest, remote: SipRemote): void;
  /** A final response to an INVITE went to a caller (relayed or the gateway's own), by status. */
  onFinalInviteResponse?(status: number): void;
}

/** The methods voiceguard handles (Allow of its OPTIONS answer, 405s and REGISTERs). */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK';
/**
 * Option tags a caller may Require of us. Session timers are relayed end to end (the PBX and the
 * carrier refresh through us), so `timer` is honoured. `100rel` is served on the caller's leg by
 * voiceguard itself (reliable provisionals and PRACK, RFC 3262; see B2buaCall), not relayed to the
 * PBX. Anything else gets 420 Bad Extension as RFC 3261 8.2.2.3 asks, instead of a call that
 * silently lacks what the caller required.
 */
const REQUIRE_OK = new Set(['timer', '100rel']);

/** The option tags of a Require header that voiceguard does not support. */
export function unsupportedRequire(value: unknown): string[] {
  return optionTags(value).filter((t) => !REQUIRE_OK.has(t));
}

export class B2bua {
  private readonly stack: SipStack;
  private readonly calls = new Map<string, { call: B2buaCall; leg: LegName }>();
  private readonly log: Logger;
  draining = false;
  closed = false;

  constructor(private readonly opts: B2buaOptions) {
    this.log = opts.logger;
    this.stack = new SipStack({
      host: opts.host,
      port: opts.port,
      publicAddress: opts.publicAddress,
      udp: opts.transports.includes('udp'),
      tcp: opts.transports.includes('tcp'),
      tls: opts.transports.includes('tls') ? (opts.tls ?? null) : null,
      onTlsError: (info) =>
        this.log.warn(
          {
            event: 'sip.tls_error',
            direction: info.direction,
            remote: `${info.remote.address}:${info.remote.port}`,
            reason: info.reason,
          },
          info.direction === 'in' ? 'TLS handshake with a peer failed' : 'TLS connection to a peer failed',
        ),
      onRequest: (rq, remote) => this.onRequest(rq, remote),
      onMalformed: (info) => this.onMalformed(info),
      onResponseSent: (status, method) => {
        if (status >= 200 && method === 'INVITE') this.opts.onFinalInviteResponse?.(status);
      },
      onError: (err) =>
        this.log.warn(
          { event: 'sip.stack_error', err: err instanceof Error ? err.message : String(err) },
          'SIP stack error',
        ),
    });
  }

  /** Resolves once every transport listens; rejects with one line saying why one cannot. */
  listening(): Promise<void> {
    return this.stack.listening();
  }

  /** The SIP over TLS port (null without TLS). */
  get tlsPort(): number | null {
    return this.stack.tlsPort;
  }

  /** The verification settings new TLS connections get now (see SipStack.tlsSettings). */
  get tlsSettings(): Pick<SipTlsOptions, 'verifyPeers' | 'requireClientCert' | 'minVersion'> | null {
    return this.stack.tlsSettings;
  }

  /** Renewed TLS material and verification settings for new TLS connections (see SipStack.reloadTls). */
  reloadTls(next: Omit<SipTlsOptions, 'port'>): void {
    this.stack.reloadTls(next);
  }

  get activeCalls(): number {
    return new Set([...this.calls.values()].map((c) => c.call)).size;
  }

  /** Create the call for an INVITE the gateway accepted; it is registered for in-dialog routing. */
  createCall(opts: Omit<B2buaCallOptions, 'stack' | 'userAgent'>): B2buaCall {
    const call = new B2buaCall({ ...opts, stack: this.stack, userAgent: this.opts.userAgent });
    this.calls.set(call.callIdA, { call, leg: 'a' });
    this.calls.set(call.callIdB, { call, leg: 'b' });
    call.once('ended', () => {
      // Keep the entries briefly so retransmitted BYEs and late responses still find the call.
      setTimeout(() => {
        if (this.calls.get(call.callIdA)?.call === call) this.calls.delete(call.callIdA);
        if (this.calls.get(call.callIdB)?.call === call) this.calls.delete(call.callIdB);
      }, 4000).unref();
    });
    return call;
  }

  reply(rq: SipRequest, status: number, reason?: string, headers: Record<string, unknown> = {}): void {
    try {
      const rs = makeResponse(rq, status, reason, { headers: { server: this.opts.userAgent, ...headers } });
      rs.version = '2.0'; // whatever version the request named (a 505 answers another one)
      // RFC 3261 8.2.6.2: a UAS adds a To tag to every response but 100 that lacks one.
      if (status > 100 && rs.headers.to && !rs.headers.to.params?.tag)
        rs.headers.to = { ...rs.headers.to, params: { ...rs.headers.to.params, tag: generateTag() } };
      this.stack.send(rs);
    } catch (err) {
      // A request too broken to answer (e.g. headers the package cannot serialise) is dropped.
      this.log.warn(
        { event: 'sip.reply_failed', method: rq.method, status, err: (err as Error).message },
        'could not send a SIP response',
      );
    }
  }

  private malformedLogged = 0;
  private malformedSuppressed = 0;
  private malformedWindow = 0;

  /** Malformed datagrams are logged (at most 20 lines per 10 s, then a count), never fatal. */
  private onMalformed(info: MalformedSip): void {
    const now = Date.now();
    if (now - this.malformedWindow > 10_000) {
      if (this.malformedSuppressed > 0)
        this.log.warn(
          { event: 'sip.parse_error_suppressed', count: this.malformedSuppressed },
          'more malformed SIP datagrams were dropped',
        );
      this.malformedWindow = now;
      this.malformedLogged = 0;
      this.malformedSuppressed = 0;
    }
    if (this.malformedLogged++ >= 20) {
      this.malformedSuppressed++;
      return;
    }
    this.log.warn(
      {
        event: 'sip.parse_error',
        transport: info.remote.protocol,
        remote: `${info.remote.address}:${info.remote.port}`,
        bytes: info.bytes,
        reason: info.reason,
        replied: info.replied400 ? 400 : null,
      },
      info.replied400 ? 'malformed SIP request answered 400' : 'malformed SIP datagram dropped',
    );
  }

  /** Why a parsed request is not acceptable (answered 400), or null. */
  private static badRequest(rq: SipRequest): string | null {
    const cseq = rq.headers.cseq;
    if (!cseq || !Number.isInteger(Number(cseq.seq)) || Number(cseq.seq) < 0) return 'bad CSeq number';
    if (typeof cseq.method !== 'string' || cseq.method.toUpperCase() !== rq.method.toUpperCase())
      return 'CSeq method does not match the request';
    if (!parseUri(rq.uri)) return 'bad Request-URI';
    if (!rq.headers.from?.uri || !parseUri(rq.headers.from.uri)) return 'bad From header';
    if (!rq.headers.to?.uri || !parseUri(rq.headers.to.uri)) return 'bad To header';
    const cl = rq.headers['content-length'];
    if (cl !== undefined && !(Number.isInteger(Number(cl)) && Number(cl) >= 0)) return 'bad Content-Length';
    // Where in-dialog requests will go: refused now, not found out when a BYE cannot be sent.
    const contact = rq.headers.contact as unknown;
    if (Array.isArray(contact))
      for (const c of contact as { uri?: string }[]) {
        if (c?.uri === '*' && rq.method === 'REGISTER') continue;
        const why = targetProblem(c?.uri);
        if (why) return `bad Contact header (${why})`;
      }
    const rr = rq.headers['record-route'] as unknown;
    if (Array.isArray(rr))
      for (const r of rr as { uri?: string }[]) {
        const why = targetProblem(r?.uri);
        if (why) return `bad Record-Route header (${why})`;
      }
    if (rq.method === 'INVITE' && !(Array.isArray(contact) && contact.length)) {
      const why = targetProblem(rq.headers.from.uri);
      if (why) return `no Contact, and the From URI cannot take in-dialog requests (${why})`;
    }
    return null;
  }

  private onRequest(rq: SipRequest, remote: SipRemote): void {
    try {
      if (rq.version !== undefined && rq.version !== '2.0') {
        // RFC 3261 8.2.1/21.5.7: only SIP/2.0 is spoken here; an ACK is not answered.
        this.log.warn(
          {
            event: 'sip.bad_request',
            method: rq.method,
            remote: `${remote.address}:${remote.port}`,
            reason: `unsupported SIP version ${rq.version}`,
          },
          'SIP request of another version answered 505',
        );
        if (rq.method !== 'ACK') this.reply(rq, 505, 'Version Not Supported');
        return;
      }
      const bad = rq.method === 'ACK' ? null : B2bua.badRequest(rq);
      if (bad) {
        this.log.warn(
          {
            event: 'sip.bad_request',
            method: rq.method,
            remote: `${remote.address}:${remote.port}`,
            reason: bad,
          },
          'malformed SIP request answered 400',
        );
        this.reply(rq, 400, `Bad Request (${bad})`);
        return;
      }
      this.dispatch(rq, remote);
    } catch (err) {
      // Never let one bad request take the gateway down.
      this.log.error(
        { event: 'sip.handler_error', method: rq.method, err: (err as Error).message },
        'request handler failed',
      );
      if (rq.method !== 'ACK') this.reply(rq, 500);
    }
  }

  private dispatch(rq: SipRequest, remote: SipRemote): void {
    const entry = this.calls.get(rq.headers['call-id']);
    if (rq.method === 'CANCEL') {
      if (entry && entry.leg === 'a') entry.call.onCancel(rq);
      else this.reply(rq, 481);
      return;
    }
    const toTag = rq.headers.to?.params?.tag;
    if (entry && (toTag || rq.method === 'ACK')) {
      // Only accept in-dialog requests whose tag is ours on that leg.
      const dialog = entry.leg === 'a' ? entry.call.a : entry.call.b;
      if (rq.method !== 'ACK' && toTag !== dialog.localTag) {
        this.reply(rq, 481);
        return;
      }
      entry.call.onRequest(entry.leg, rq);
      return;
    }
    if (rq.method === 'ACK') return;
    if (toTag) {
      this.reply(rq, 481);
      return;
    }
    if (rq.method === 'OPTIONS') {
      this.reply(rq, 200, 'OK', { allow: ALLOW, accept: 'application/sdp' });
      return;
    }
    if (rq.method !== 'INVITE') {
      this.reply(rq, 405, 'Method Not Allowed', { allow: ALLOW });
      return;
    }
    const mf = Number(rq.headers['max-forwards'] ?? 70);
    if (Number.isFinite(mf) && mf <= 0) {
      this.reply(rq, 483);
      return;
    }
    const unsupported = unsupportedRequire(rq.headers.require);
    if (unsupported.length > 0) {
      this.log.info(
        { event: 'sip.bad_extension', remote: `${remote.address}:${remote.port}`, unsupported },
        'INVITE requires an extension voiceguard does not support: 420',
      );
      this.reply(rq, 420, 'Bad Extension', { unsupported: unsupported.join(', ') });
      return;
    }
    if (entry) {
      // A retransmitted INVITE reaches its server transaction in the stack; one arriving here
      // with a known Call-ID and no tag is a new attempt (e.g. after a 401) - treat it as new
      // once the old attempt has ended.
      if (entry.call.state !== 'terminated') {
        this.reply(rq, 491);
        return;
      }
    }
    if (this.draining || this.closed) {
      this.reply(rq, 503, 'Service Unavailable', { 'retry-after': '30' });
      return;
    }
    this.reply(rq, 100);
    this.opts.onInvite(rq, remote);
  }

  /** An out-of-dialog request of the gateway's own (REGISTER); responses (a 408 on timeout) go to `onResponse`. */
  request(rq: SipRequest, onResponse: (rs: SipResponse) => void): void {
    this.stack.send(rq, onResponse);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stack.close();
  }
}
