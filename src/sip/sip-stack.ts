import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { RemoteInfo, Socket } from 'node:dgram';
import { listenProblem } from '../listen-problem.js';

/**
 * The one typed boundary around the untyped `sip` package (0.0.6): its parser, transport
 * (UDP, TCP, TLS) and RFC 3261 transaction layer. Everything above this file sees only these types.
 */
const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped package, wrapped once here
const sip: any = require('sip');
// The package creates its UDP socket with require('dgram').createSocket(type, onMessage); the
// same module object is patched for the duration of sip.create() only (see guardUdp below); net.createServer
// and tls.createServer likewise for TCP and TLS.
const dgram = require('node:dgram') as typeof import('node:dgram');
const net = require('node:net') as typeof import('node:net');
const tls = require('node:tls') as typeof import('node:tls');
type StreamSocket = import('node:net').Socket;

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
  /** SIP over TLS (listener and the connections the stack opens); null/absent = no TLS. */
  tls?: SipTlsOptions | null;
  onRequest(rq: SipRequest, remote: SipRemote): void;
  /** Errors the package catches internally (handler throws, unresolvable hops). */
  onError(err: unknown): void;
  /** A UDP datagram or TCP message that is not well-formed SIP: dropped, or answered 400 when it is a request. */
  onMalformed?(info: MalformedSip): void;
  /** Every response this stack sends (status and the CSeq method it answers), e.g. for metrics. */
  onResponseSent?(status: number, method: string): void;
  /** A TLS handshake failed (a peer's certificate refused, a client speaking plain SIP to the TLS port...). */
  onTlsError?(info: { direction: 'in' | 'out'; remote: SipRemote; reason: string }): void;
}

export type SipTransport = 'udp' | 'tcp' | 'tls';

/** The `;transport=` URI parameter for a transport ('' for UDP, the default). */
export function transportParam(t: SipTransport): string {
  return t === 'udp' ? '' : `;transport=${t}`;
}

export interface SipTlsOptions {
  port: number;
  key: Buffer;
  cert: Buffer;
  /** CAs for peers' certificates; undefined = Node's bundled roots. */
  ca?: Buffer;
  /** Connections the stack opens verify the peer's certificate against the host they address. */
  verifyPeers: boolean;
  /** Accepted connections must present a certificate signed by `ca`. */
  requireClientCert: boolean;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
}

export interface MalformedSip {
  remote: SipRemote;
  bytes: number;
  reason: string;
  /** true when a 400 Bad Request went back (a request with a usable Via). */
  replied400: boolean;
}

const REQUIRED = ['via', 'from', 'to', 'call-id', 'cseq'] as const;
const COMPACT: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id' };

/**
 * Why a datagram is not a SIP message the stack can take, or null when it is. Mirrors the
 * package's own checks (parse + checkMessage), which drop such packets without a word.
 */
export function malformedReason(data: Buffer): string | null {
  const text = data.toString('binary');
  if (!/\r\n\r\n/.test(text)) return 'no end of headers (CRLF CRLF)';
  let m: SipMessage | undefined;
  try {
    m = sip.parse(text) as SipMessage | undefined;
  } catch (err) {
    return `unparsable: ${(err as Error).message}`;
  }
  if (!m) return 'unparsable start line or headers';
  if (!isRequest(m) && !(m.status >= 100 && m.status <= 699)) return 'bad status code';
  const version = unsupportedResponseVersion(m);
  if (version !== null) return `response of unsupported SIP version ${version}`;
  for (const h of REQUIRED) {
    const v = (m.headers as unknown as Record<string, unknown>)[h];
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0))
      return `missing or malformed ${h} header`;
  }
  return null;
}

/**
 * The version of a response that is not SIP/2.0, or null. Only SIP/2.0 is spoken here (RFC 3261
 * 7.1): such a response matches no transaction of ours and is dropped with a log line, where the
 * package would take it as the answer (a `SIP/3.0 486` ending a call the PBX then answers). A
 * request of another version is the B2BUA's to answer (505), so it is not flagged here.
 */
export function unsupportedResponseVersion(m: SipMessage): string | null {
  if (isRequest(m) || m.version === undefined || m.version === '2.0') return null;
  return m.version;
}

/** A bare 400 for a request the stack cannot parse, built from its raw Via/From/To/Call-ID/CSeq lines. */
export function rawBadRequest(data: Buffer, reason: string): string | null {
  const text = data.toString('binary');
  const head = text.split('\r\n\r\n', 1)[0] ?? '';
  const lines = head.split('\r\n');
  const first = lines[0]?.trim() ?? '';
  // Never answer a response, an ACK or something that is not SIP-looking at all.
  if (!/^[A-Za-z]+ /.test(first) || /^ACK /i.test(first)) return null;
  const keep: string[] = [];
  for (const line of lines.slice(1)) {
    const m = /^([A-Za-z-]+)\s*:(.*)$/.exec(line);
    if (!m) continue;
    const name = COMPACT[m[1]!.toLowerCase()] ?? m[1]!.toLowerCase();
    if (!(REQUIRED as readonly string[]).includes(name)) continue;
    let value = m[2]!.trim();
    if (name === 'to' && !/;\s*tag=/i.test(value)) value += `;tag=${generateTag()}`;
    keep.push(
      `${name === 'call-id' ? 'Call-ID' : name === 'cseq' ? 'CSeq' : name[0]!.toUpperCase() + name.slice(1)}: ${value}`,
    );
  }
  if (!keep.some((l) => /^Via:/.test(l))) return null;
  const phrase = `Bad Request (${reason})`.replace(/[\r\n]/g, ' ').slice(0, 120);
  return `SIP/2.0 400 ${phrase}\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`;
}

/** Answer a rejected request 400 (when it has a usable Via) through `send`, and report it. */
function rejectMalformed(
  data: Buffer,
  reason: string,
  remote: SipRemote,
  opts: SipStackOptions,
  send: (reply: Buffer) => void,
): void {
  const reply = rawBadRequest(data, reason);
  if (reply) send(Buffer.from(reply, 'binary'));
  opts.onMalformed?.({ remote, bytes: data.length, reason, replied400: reply !== null });
}

/** TCP connections (accepted and opened) of each stack, until they close. */
const openSockets = new WeakMap<SipStackOptions, Set<StreamSocket>>();

/**
 * The package's TCP parser skips a header block it cannot parse without a word. This observer
 * frames the same byte stream the same way (header block + Content-Length body), reports the
 * blocks the package will drop and answers a malformed request 400 on the same connection
 * (RFC 3261 18.2.2), built from its raw Via/From/To/Call-ID/CSeq lines like on UDP. Framing stays
 * in step because both parsers skip exactly the block and its Content-Length body.
 */
function observeTcp(socket: StreamSocket, opts: SipStackOptions, protocol: 'TCP' | 'TLS' = 'TCP'): void {
  // Remember the connection so that close() can end it: the package's destroy() only closes its
  // listening server and leaves every open connection idle for up to two minutes.
  let open = openSockets.get(opts);
  if (!open) openSockets.set(opts, (open = new Set()));
  open.add(socket);
  socket.once('close', () => open.delete(socket));
  let buf = '';
  let skip = 0;
  // Read when a block is rejected: a connection we open has no peer address until it connects.
  const remote = (): SipRemote => ({
    protocol,
    address: socket.remoteAddress ?? '?',
    port: socket.remotePort ?? 0,
  });
  socket.on('data', (chunk: string | Buffer) => {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('binary');
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        buf = buf.slice(n);
        skip -= n;
        if (skip > 0) return;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 65_536) buf = ''; // the package treats this as a flood and closes the stream
        return;
      }
      const head = buf.slice(0, end + 4);
      buf = buf.slice(end + 4);
      if (/^\s*$/.test(head)) continue; // CRLF keepalives
      const data = Buffer.from(head, 'binary');
      const reason = malformedReason(data);
      if (reason)
        rejectMalformed(data, reason, remote(), opts, (reply) => {
          if (socket.writable) socket.write(reply);
        });
      const cl = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(head);
      skip = cl ? Number(cl[1]) : 0;
    }
  });
}

/**
 * Connections the package opens itself (a request to a TCP peer without an open flow: the PBX over
 * TCP, or a caller whose connection closed) get the same observer as inbound ones. The package calls
 * net.connect(port, host) inside SipStack.send when the host is an IP address, so `sending` names the
 * stack whose options report the malformed blocks; after a DNS lookup it calls later, and then the
 * only live TCP stack is meant (a process runs one; with several, such a connection is not observed).
 * Only calls from the package itself are observed, so a webhook's connection is left alone.
 */
let sending: SipStackOptions | null = null;
const tcpStacks = new Set<SipStackOptions>();
const tlsStacks = new Set<SipStackOptions>();
let connectWrapped = false;
let tlsConnectWrapped = false;

const fromSipPackage = (): boolean => /[\\/]node_modules[\\/]sip[\\/]/.test(new Error().stack ?? '');

/** What a stack presents and trusts, on its listener and on the connections it opens. */
function tlsCommonOptions(t: SipTlsOptions): import('node:tls').TlsOptions {
  return { key: t.key, cert: t.cert, ...(t.ca ? { ca: t.ca } : {}), minVersion: t.minVersion };
}

/** TLS server options of a stack (the package passes one object to server and client; they differ). */
function tlsServerOptions(t: SipTlsOptions): import('node:tls').TlsOptions {
  return {
    ...tlsCommonOptions(t),
    requestCert: t.requireClientCert,
    rejectUnauthorized: t.requireClientCert,
  };
}

/**
 * The package calls tls.connect(port, host, options.tls) when it opens a TLS connection. The
 * options are replaced by the stack's client options (verification of the peer against the host it
 * addresses, unless verifyPeers is off), and the connection is observed like a TCP one.
 */
function wrapOutboundTls(): void {
  if (tlsConnectWrapped) return;
  tlsConnectWrapped = true;
  const original = tls.connect as (...args: unknown[]) => import('node:tls').TLSSocket;
  (tls as { connect: unknown }).connect = function connect(this: unknown, ...args: unknown[]) {
    const opts = sending ?? (tlsStacks.size === 1 ? [...tlsStacks][0]! : null);
    if (!(opts?.tls && typeof args[0] === 'number' && typeof args[1] === 'string' && fromSipPackage()))
      return original.apply(this, args);
    const t = opts.tls;
    const port = args[0];
    const host = args[1];
    const socket = original.call(this, port, host, {
      ...tlsCommonOptions(t),
      rejectUnauthorized: t.verifyPeers,
      // SNI carries names only; an IP address is checked against the certificate's IP entries.
      ...(net.isIP(host) ? {} : { servername: host }),
    });
    // Errors after the handshake are the connection's (a peer that went away), not TLS failures.
    let handshaken = false;
    socket.once('secureConnect', () => (handshaken = true));
    socket.on('error', (err: Error) => {
      // The package prints connect errors with console.log; a certificate would fill many lines.
      delete (err as { cert?: unknown }).cert;
      if (handshaken) return;
      opts.onTlsError?.({
        direction: 'out',
        remote: { protocol: 'TLS', address: host, port },
        reason: err.message,
      });
    });
    observeTcp(socket, opts, 'TLS');
    return socket;
  };
}

function observeOutboundTcp(): void {
  if (connectWrapped) return;
  connectWrapped = true;
  const original = net.connect as (...args: unknown[]) => import('node:net').Socket;
  (net as { connect: unknown }).connect = function connect(this: unknown, ...args: unknown[]) {
    const socket = original.apply(this, args);
    const opts = sending ?? (tcpStacks.size === 1 ? [...tcpStacks][0]! : null);
    if (opts && typeof args[0] === 'number' && typeof args[1] === 'string' && fromSipPackage())
      observeTcp(socket, opts);
    return socket;
  };
}

/**
 * The package writes a few diagnostics with console.log (a connection that failed, a stream
 * flooding it). They would break the JSON log lines on stdout, so while a stack is open they go to
 * its onError instead, as one line.
 */
const liveStacks = new Set<SipStackOptions>();
let consoleWrapped = false;

function routePackageConsole(): void {
  if (consoleWrapped) return;
  consoleWrapped = true;
  const original = console.log.bind(console);
  console.log = (...args: unknown[]): void => {
    const target = liveStacks.values().next().value;
    if (!target || !fromSipPackage()) {
      original(...args);
      return;
    }
    const text = args
      .map((a) =>
        a instanceof Error ? a.message : typeof a === 'string' ? a.trim() : inspect(a, { depth: 1 }),
      )
      .join(' ');
    target.onError(new Error(`sip package: ${text}`));
  };
}

/** Set by the package's logger.recv hook, which it calls synchronously for every message it accepts. */
interface AcceptGate {
  accepted: boolean;
}

/** A socket or server the package opened to listen on, with the transport it serves. */
interface OpenedListener {
  transport: SipTransport;
  emitter: import('node:events').EventEmitter;
}

/**
 * Run `create` with dgram.createSocket patched so that the sockets it makes hand every datagram
 * to the package first; one the package did not accept (its logger.recv hook never fired) is
 * explained, reported and, when it is a request, answered 400 instead of vanishing. Only those
 * are parsed a second time. Nothing the package's handler throws can escape into the event loop.
 */
function guardUdp<T>(opts: SipStackOptions, gate: AcceptGate, opened: OpenedListener[], create: () => T): T {
  const original = dgram.createSocket;
  const patched = (
    type: Parameters<typeof original>[0],
    listener?: (msg: Buffer, rinfo: RemoteInfo) => void,
  ) => {
    if (!listener) return original.call(dgram, type as never);
    // eslint-disable-next-line prefer-const -- assigned after the guarded listener is made
    let socket: Socket;
    const guarded = (msg: Buffer, rinfo: RemoteInfo): void => {
      gate.accepted = false;
      try {
        listener(msg, rinfo);
      } catch (err) {
        opts.onError(err);
      }
      if (gate.accepted) return;
      rejectMalformed(
        msg,
        malformedReason(msg) ?? 'not accepted by the SIP parser',
        { protocol: 'UDP', address: rinfo.address, port: rinfo.port },
        opts,
        (reply) => socket.send(reply, rinfo.port, rinfo.address),
      );
    };
    socket = original.call(dgram, type as never, guarded);
    opened.push({ transport: 'udp', emitter: socket });
    return socket;
  };
  const originalServer = net.createServer;
  const makeServer = originalServer.bind(net) as (
    listener: (socket: import('node:net').Socket) => void,
  ) => import('node:net').Server;
  const patchedServer = (listener: (socket: import('node:net').Socket) => void) => {
    const server = makeServer((socket) => {
      // Observe first, so a 400 goes out before the answers to the messages that follow it.
      observeTcp(socket, opts);
      listener(socket);
    });
    opened.push({ transport: 'tcp', emitter: server });
    return server;
  };
  const originalTlsServer = tls.createServer;
  const patchedTlsServer = (_options: unknown, listener: (socket: StreamSocket) => void) => {
    const t = opts.tls;
    if (!t) throw new Error('SIP over TLS without TLS options');
    const server = originalTlsServer.call(tls, tlsServerOptions(t), (socket) => {
      observeTcp(socket, opts, 'TLS');
      listener(socket);
    });
    server.on('tlsClientError', (err: Error, socket: StreamSocket) => {
      opts.onTlsError?.({
        direction: 'in',
        remote: { protocol: 'TLS', address: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 },
        reason: err.message,
      });
    });
    tlsServers.set(opts, server);
    opened.push({ transport: 'tls', emitter: server });
    return server;
  };
  (dgram as { createSocket: unknown }).createSocket = patched;
  (net as { createServer: unknown }).createServer = patchedServer;
  (tls as { createServer: unknown }).createServer = patchedTlsServer;
  try {
    return create();
  } finally {
    (dgram as { createSocket: unknown }).createSocket = original;
    (net as { createServer: unknown }).createServer = originalServer;
    (tls as { createServer: unknown }).createServer = originalTlsServer;
  }
}

function whenListening(l: OpenedListener, opts: SipStackOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    l.emitter.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) {
        opts.onError(err);
        return;
      }
      settled = true;
      const tls = l.transport === 'tls';
      const target = {
        what: 'SIP',
        host: opts.host,
        port: tls ? (opts.tls?.port ?? opts.port) : opts.port,
        transport: l.transport,
        portSetting: tls ? 'sip.listen.tlsPort' : 'sip.listen.port',
        hostSetting: 'sip.listen.host',
      };
      reject(new Error(listenProblem(target, err)));
    });
    l.emitter.once('listening', () => {
      settled = true;
      resolve();
    });
  });
}

/** The TLS listener of each stack (for a certificate reload). */
const tlsServers = new WeakMap<SipStackOptions, import('node:tls').Server>();

export function isRequest(m: SipMessage): m is SipRequest {
  return (m as SipRequest).method !== undefined;
}

export class SipStack {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the package's stack object
  private readonly stack: any;
  readonly publicAddress: string;
  readonly port: number;

  private readonly opts: SipStackOptions;

  constructor(opts: SipStackOptions) {
    this.opts = opts;
    if (opts.tcp) {
      observeOutboundTcp();
      tcpStacks.add(opts);
    }
    if (opts.tls) {
      wrapOutboundTls();
      tlsStacks.add(opts);
    }
    routePackageConsole();
    liveStacks.add(opts);
    this.publicAddress = opts.publicAddress;
    this.port = opts.port;
    const gate: AcceptGate = { accepted: false };
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
      // The package passes this object to tls.createServer and tls.connect, both replaced above.
      ...(opts.tls ? { tls: {}, tls_port: opts.tls.port } : {}),
      logger: {
        error: (e: unknown) => opts.onError(e),
        recv: (m: SipMessage) => {
          if (unsupportedResponseVersion(m) !== null) {
            // Called just before the package looks up the message's transaction: a Call-ID no
            // dialog can have makes it match none, so the package drops it; the UDP guard (gate
            // left closed) and the TCP observer report it (malformedReason names the version).
            m.headers['call-id'] = '\u0000unsupported SIP version';
            return;
          }
          gate.accepted = true;
        },
        // Called after the package wrote its Via and before it serialises the request: its Via
        // port is the UDP/TCP one whatever the transport, so a TLS request names the TLS port.
        send: (m: SipMessage, target: { protocol?: string }) => {
          if (opts.tls && isRequest(m) && target.protocol?.toUpperCase() === 'TLS' && m.headers.via[0])
            m.headers.via[0].port = opts.tls.port;
        },
      },
    };
    const opened: OpenedListener[] = [];
    this.stack = guardUdp(opts, gate, opened, () =>
      sip.create(options, (rq: SipRequest, remote: SipRemote) => opts.onRequest(rq, remote)),
    );
    options.publicAddress = opts.publicAddress;
    // The package listens without an error handler: a port in use would throw from the event loop.
    this.ready = Promise.all(opened.map((l) => whenListening(l, opts)));
    this.ready.catch(() => undefined); // reported to whoever awaits listening()
  }

  private readonly ready: Promise<unknown>;

  /**
   * Resolves once every transport listens; rejects with one line naming the address, the
   * transport and the setting to change when one cannot (a port in use, a port below 1024
   * without the capability, an address not on this machine). Errors of a listener later on go
   * to onError.
   */
  async listening(): Promise<void> {
    await this.ready;
  }

  /**
   * Requests get a client transaction (responses via onResponse); responses go out on their server
   * transaction. Never throws: a message the package cannot send (a target it cannot parse or
   * reach) is reported to onError, so that a timer or media event that hangs up a call still
   * ends it, and the process never goes down on a peer's bad address.
   */
  send(m: SipMessage, onResponse?: (rs: SipResponse) => void): void {
    if (this.closed) return;
    const outer = sending;
    sending = this.opts;
    try {
      this.stack.send(m, onResponse);
    } catch (err) {
      const what =
        'method' in m && m.method
          ? `${m.method} to ${String(m.uri)}`
          : `a ${(m as SipResponse).status} response`;
      this.opts.onError(new Error(`could not send ${what}: ${(err as Error).message}`));
      return;
    } finally {
      sending = outer;
    }
    if ('status' in m && typeof m.status === 'number')
      this.opts.onResponseSent?.(m.status, m.headers.cseq?.method ?? '');
  }

  private closed = false;

  /** The port SIP over TLS listens on (null without TLS). */
  get tlsPort(): number | null {
    return this.opts.tls?.port ?? null;
  }

  /** The verification settings new TLS connections get now (null without TLS). */
  get tlsSettings(): Pick<SipTlsOptions, 'verifyPeers' | 'requireClientCert' | 'minVersion'> | null {
    const t = this.opts.tls;
    return t
      ? { verifyPeers: t.verifyPeers, requireClientCert: t.requireClientCert, minVersion: t.minVersion }
      : null;
  }

  /**
   * A renewed certificate, key or CA bundle, and the verification settings: new connections (both
   * ways) use them at once, open ones keep the session they negotiated. Throws, changing nothing,
   * when the material does not load. The port stays (a new one needs a restart).
   */
  reloadTls(next: Omit<SipTlsOptions, 'port'>): void {
    const t = this.opts.tls;
    const server = tlsServers.get(this.opts);
    if (!t || !server) throw new Error('SIP over TLS is not listening');
    const merged: SipTlsOptions = { ...next, port: t.port }; // a caFile taken out leaves no old CA behind
    const options = tlsServerOptions(merged);
    server.setSecureContext(options);
    // Not secure-context options: Node's TLS server reads these two from itself for each connection.
    Object.assign(server, {
      requestCert: options.requestCert,
      rejectUnauthorized: options.rejectUnauthorized,
    });
    this.opts.tls = merged; // the client side (wrapOutboundTls) reads verifyPeers and minVersion from here
  }

  /**
   * The package starts a new client transaction on the next tick; destroying the sockets before
   * that tick would make it write to a closed socket and throw from a timer. So close after
   * setImmediate, when every started transaction exists and can be shut down. TCP connections,
   * accepted or opened, are destroyed too: the package would leave them open until their
   * two-minute idle timeout, and a peer's server waiting for them to end would wait that long.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    tcpStacks.delete(this.opts);
    tlsStacks.delete(this.opts);
    liveStacks.delete(this.opts);
    return new Promise((resolve) =>
      setImmediate(() => {
        this.stack.destroy();
        for (const socket of openSockets.get(this.opts) ?? []) {
          // end() sends what is still buffered (a last BYE) before the FIN; destroy if it hangs.
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
        }
        openSockets.delete(this.opts);
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
