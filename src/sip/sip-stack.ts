import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

/**
 * The one typed boundary around the untyped `sip` package (0.0.6): its parser, transport
 * (UDP + TCP) and RFC 3261 transaction layer. Everything above this file sees only these types.
 */
const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped package, wrapped once here
const sip: any = require('sip');

export interface SipUri {
  schema?: string;
  user?: string;
  password?: string;
  host: string;
  port?: number;
  params: Record<string, string | null | undefined>;
  headers?: Record<string, string>;
}
export interface NameAddr {
  name?: string;
  uri: string;
  params: Record<string, string | null | undefined>;
}
export interface Via {
  version?: string;
  protocol?: string;
  host?: string;
  port?: number;
  params: Record<string, string | number | null | undefined>;
}
export interface CSeq {
  seq: number;
  method: string;
}
export interface SipHeaders {
  via: Via[];
  to: NameAddr;
  from: NameAddr;
  'call-id': string;
  cseq: CSeq;
  contact?: NameAddr[];
  route?: NameAddr[];
  'record-route'?: NameAddr[];
  'max-forwards'?: string | number;
  'content-type'?: string;
  'content-length'?: number;
  [name: string]: unknown;
}
export interface SipRequest {
  method: string;
  uri: string;
  version?: string;
  headers: SipHeaders;
  content?: string;
}
export interface SipResponse {
  status: number;
  reason: string;
  version?: string;
  headers: SipHeaders;
  content?: string;
}
export type SipMessage = SipRequest | SipResponse;
export interface SipRemote {
  protocol: string;
  address: string;
  port: number;
}

export interface SipStackOptions {
  host: string;
  port: number;
  publicAddress: string;
  udp: boolean;
  tcp: boolean;
  onRequest(rq: SipRequest, remote: SipRemote): void;
  /** Errors the package catches internally (handler throws, unresolvable hops). */
  onError(err: unknown): void;
}

export function isRequest(m: SipMessage): m is SipRequest {
  return (m as SipRequest).method !== undefined;
}

export class SipStack {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the package's stack object
  private readonly stack: any;
  readonly publicAddress: string;
  readonly port: number;

  constructor(opts: SipStackOptions) {
    this.publicAddress = opts.publicAddress;
    this.port = opts.port;
    const options = {
      address: opts.host,
      port: opts.port,
      // The package treats any Request-URI/Route host equal to its own "hostname" as one of its
      // flow tokens and then fails to route (404) - which breaks a PBX on the gateway's own IP
      // (e.g. Asterisk on the same box). It reads that hostname once at create() but the Via
      // host from options.publicAddress at every send, so it gets a name no URI can carry
      // first, and the real address for the Via right after.
      publicAddress: 'voiceguard-flow.invalid',
      udp: opts.udp,
      tcp: opts.tcp,
      logger: { error: (e: unknown) => opts.onError(e) },
    };
    this.stack = sip.create(options, (rq: SipRequest, remote: SipRemote) => opts.onRequest(rq, remote));
    options.publicAddress = opts.publicAddress;
  }

  /** Requests get a client transaction (responses via onResponse); responses go out on their server transaction. */
  send(m: SipMessage, onResponse?: (rs: SipResponse) => void): void {
    if (this.closed) return;
    this.stack.send(m, onResponse);
  }

  private closed = false;

  /**
   * The package starts a new client transaction on the next tick; destroying the sockets before
   * that tick would make it write to a closed socket and throw from a timer. So close after
   * setImmediate, when every started transaction exists and can be shut down.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) =>
      setImmediate(() => {
        this.stack.destroy();
        resolve();
      }),
    );
  }
}

export function makeResponse(
  rq: SipRequest,
  status: number,
  reason?: string,
  extension?: { headers?: Record<string, unknown>; content?: string },
): SipResponse {
  return sip.makeResponse(rq, status, reason ?? defaultReason(status), extension) as SipResponse;
}

export function parseUri(uri: string): SipUri | undefined {
  try {
    return (sip.parseUri(uri) as SipUri | undefined) ?? undefined;
  } catch {
    return undefined;
  }
}
export function stringifyUri(uri: SipUri): string {
  return sip.stringifyUri(uri) as string;
}
export function parseMessage(text: string): SipMessage | undefined {
  try {
    return (sip.parse(text) as SipMessage | undefined) ?? undefined;
  } catch {
    return undefined;
  }
}
export function stringifyMessage(m: SipMessage): string {
  return sip.stringify(m) as string;
}
export function generateTag(): string {
  return randomBytes(6).toString('hex');
}

const REASONS: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  183: 'Session Progress',
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  603: 'Decline',
};
export function defaultReason(status: number): string {
  return REASONS[status] ?? (status < 300 ? 'OK' : 'Error');
}
