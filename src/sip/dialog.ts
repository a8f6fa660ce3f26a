import { parseUri, type NameAddr, type SipRequest, type SipResponse } from './sip-stack.js';

/**
 * Why `uri` cannot be where in-dialog requests go (a Contact, a Record-Route hop), or null if it
 * can: a SIP URI with a host and, if it names one, a port the OS can send to. A peer's bad Contact
 * must be refused when it arrives; found only when a BYE is sent to it, it cannot be answered.
 */
export function targetProblem(uri: string | undefined): string | null {
  const u = uri ? parseUri(uri) : undefined;
  if (!u?.host) return 'not a SIP URI with a host';
  // The package gives NaN for a URI without a port.
  const port = u.port;
  if (
    typeof port === 'number' &&
    !Number.isNaN(port) &&
    !(Number.isInteger(port) && port >= 1 && port <= 65535)
  )
    return `port ${port} out of range`;
  return null;
}

/**
 * One leg's dialog state (RFC 3261 §12): identifiers, route set, remote target and the local
 * CSeq counter, and the requests built from them. A B2BUA call owns two of these, one per leg,
 * each with its own Call-ID, tags and CSeq space.
 */
export interface DialogInit {
  callId: string;
  local: NameAddr; // our side (From when we are UAC, To when UAS), with our tag in params.tag
  remote: NameAddr; // their side, remote tag filled in when known
  remoteTarget: string; // Request-URI for in-dialog requests (their Contact)
  routeSet: NameAddr[];
  localSeq: number;
  contact: string; // our Contact URI (the gateway)
}

export class Dialog {
  readonly callId: string;
  readonly local: NameAddr;
  remote: NameAddr;
  remoteTarget: string;
  routeSet: NameAddr[];
  localSeq: number;
  readonly contact: string;

  constructor(init: DialogInit) {
    this.callId = init.callId;
    this.local = init.local;
    this.remote = init.remote;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.localSeq = init.localSeq;
    this.contact = init.contact;
  }

  get localTag(): string | undefined {
    return this.local.params.tag ?? undefined;
  }
  get remoteTag(): string | undefined {
    return this.remote.params.tag ?? undefined;
  }

  /** Learn the remote tag, target and route set from a response to our INVITE (UAC side). */
  updateFromResponse(rs: SipResponse): void {
    const tag = rs.headers.to.params.tag;
    if (tag) this.remote = { ...this.remote, params: { ...this.remote.params, tag } };
    const contact = rs.headers.contact?.[0]?.uri;
    if (contact && !targetProblem(contact)) this.remoteTarget = contact;
    // The route set comes from the response that creates the dialog: a 1xx with a tag creates an
    // early dialog (PRACK, UPDATE go along it), and the 2xx sets it for good (RFC 3261 12.1.2).
    const rr = rs.headers['record-route'];
    if ((rs.status >= 200 || tag) && Array.isArray(rr) && rr.every((r) => !targetProblem(r.uri)))
      this.routeSet = [...rr].reverse();
  }

  /** A target refresh (re-INVITE/UPDATE) from the peer moves its Contact. */
  updateTarget(rq: SipRequest): void {
    const contact = rq.headers.contact?.[0]?.uri;
    if (contact && !targetProblem(contact)) this.remoteTarget = contact;
  }

  /** A new in-dialog request (BYE, re-INVITE, UPDATE, INFO, OPTIONS); the stack fills the Via. */
  makeRequest(method: string, extraHeaders: Record<string, unknown> = {}, content?: string): SipRequest {
    this.localSeq += 1;
    return this.requestWithSeq(method, this.localSeq, extraHeaders, content);
  }

  /** The ACK for a 2xx to our INVITE with sequence number `seq`; `sdp`: the answer to an offer in that 2xx. */
  makeAck(seq: number, sdp?: string): SipRequest {
    return sdp === undefined
      ? this.requestWithSeq('ACK', seq, {})
      : this.requestWithSeq('ACK', seq, { 'content-type': 'application/sdp' }, sdp);
  }

  private requestWithSeq(
    method: string,
    seq: number,
    extraHeaders: Record<string, unknown>,
    content?: string,
  ): SipRequest {
    const rq: SipRequest = {
      method,
      uri: this.remoteTarget,
      headers: {
        via: [],
        to: this.remote,
        from: this.local,
        'call-id': this.callId,
        cseq: { seq, method },
        contact: [{ uri: this.contact, params: {} }],
        'max-forwards': 70,
        ...extraHeaders,
      },
    };
    if (this.routeSet.length > 0) rq.headers.route = this.routeSet.map((r) => ({ ...r }));
    if (content !== undefined) rq.content = content;
    return rq;
  }
}
