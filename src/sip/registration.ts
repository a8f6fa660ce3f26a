import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { ALLOW } from './b2bua.js';
import {
  parseUri,
  transportParam,
  type SipRequest,
  type SipResponse,
  type SipTransport,
} from './sip-stack.js';

const require = createRequire(import.meta.url);
/** node-sip's digest helper (RFC 2617/3261 22): signs a request against a 401/407 challenge. */
const digest = require('sip/digest') as {
  signRequest(
    ctx: object,
    rq: SipRequest,
    rs: SipResponse | null,
    creds: { user: string; password: string },
  ): unknown;
};

export interface RegistrationConfig {
  /** The trunk this binding belongs to (logs, metrics). */
  trunk: string;
  /** host or host:port of the registrar. */
  registrar: string;
  transport: SipTransport;
  /** Address of record, e.g. sip:4930123456@sip.carrier.example. */
  aor: string;
  username: string;
  password: string;
  expiresS: number;
  /** User part of the Contact; null = the AOR's user. */
  contactUser: string | null;
}

export type RegistrationState = 'registering' | 'registered' | 'failed' | 'stopped';

export interface RegistrationDeps {
  /** Send an out-of-dialog request; `onResponse` gets each response (a 408 on timeout). */
  send(rq: SipRequest, onResponse: (rs: SipResponse) => void): void;
  /** Where the registrar should send calls: the gateway's public address and SIP port. */
  contactHost: string;
  contactPort: number;
  /** voiceguard's SIP over TLS port, for a Contact over TLS. */
  contactTlsPort?: number | null;
  userAgent: string;
  logger: Logger;
  /** State changes, e.g. for metrics. */
  onState?(state: RegistrationState): void;
  /** Retry delays after a failure (ms); the last repeats. Default 30 s, 60 s, 120 s, 300 s. */
  retryDelaysMs?: number[];
}

/** Seconds before the granted expiry at which the binding is refreshed: 30 s, or half the expiry if shorter. */
export function refreshDelayS(grantedS: number): number {
  return Math.max(1, grantedS - Math.min(30, grantedS / 2));
}

/**
 * One registration binding toward a carrier (RFC 3261 section 10): voiceguard registers its own address
 * as the contact of the trunk's AOR, so a registration-based trunk delivers inbound calls to voiceguard,
 * which relays them to the PBX like any other inbound call. Digest challenges (401/407) are answered with
 * the configured credentials; the binding is refreshed before the granted expiry (the Contact's expires
 * parameter, else the Expires header, else the requested value); a failure is retried with back-off
 * (Retry-After honoured); stop() removes the binding (Expires: 0).
 */
export class Registration {
  state: RegistrationState = 'registering';
  /** When the current binding expires (ms epoch), once registered. */
  expiresAtMs: number | null = null;
  private readonly callId = `${randomBytes(12).toString('hex')}@voiceguard`;
  private readonly fromTag = randomBytes(6).toString('hex');
  private cseq = 1;
  private timer: NodeJS.Timeout | null = null;
  private authCtx: object = {};
  private failures = 0;
  private stopped = false;
  private readonly registrarUri: string;
  private readonly contactUri: string;

  constructor(
    private readonly cfg: RegistrationConfig,
    private readonly deps: RegistrationDeps,
  ) {
    const aor = parseUri(cfg.aor);
    if (!aor?.host) throw new Error(`sip.trunks[${cfg.trunk}].register.aor: '${cfg.aor}' is not a SIP URI`);
    const transport = transportParam(cfg.transport);
    this.registrarUri = `sip:${cfg.registrar}${transport}`;
    const user = cfg.contactUser ?? aor.user ?? 'voiceguard';
    // Over TLS the carrier reaches voiceguard on its TLS port.
    const port = cfg.transport === 'tls' ? (deps.contactTlsPort ?? deps.contactPort) : deps.contactPort;
    this.contactUri = `sip:${user}@${deps.contactHost}:${port}${transport}`;
  }

  /** The trunk this binding belongs to. */
  get trunk(): string {
    return this.cfg.trunk;
  }

  start(): void {
    this.send(this.cfg.expiresS, false);
  }

  /** Remove the binding (Expires: 0) if one was made; resolves on the answer or after `timeoutMs`. */
  stop(timeoutMs = 2000): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    const wasRegistered = this.state === 'registered';
    this.setState('stopped');
    if (!wasRegistered) return Promise.resolve();
    return new Promise((resolve) => {
      let settled = false;
      const t = setTimeout(() => {
        settled = true;
        this.deps.logger.warn(
          { event: 'sip.unregister_failed', trunk: this.cfg.trunk, status: null },
          'no answer to the registration removal; the binding runs out at its expiry',
        );
        resolve();
      }, timeoutMs);
      t.unref();
      this.send(0, false, (rs) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        if (rs.status < 300)
          this.deps.logger.info(
            { event: 'sip.unregistered', trunk: this.cfg.trunk },
            'trunk registration removed',
          );
        else
          this.deps.logger.warn(
            { event: 'sip.unregister_failed', trunk: this.cfg.trunk, status: rs.status },
            'registration removal refused; the binding runs out at its expiry',
          );
        resolve();
      });
    });
  }

  private request(expiresS: number): SipRequest {
    const aor = { uri: this.cfg.aor, params: {} };
    return {
      method: 'REGISTER',
      uri: this.registrarUri,
      headers: {
        via: [],
        to: aor,
        from: { uri: this.cfg.aor, params: { tag: this.fromTag } },
        'call-id': this.callId,
        cseq: { seq: this.cseq++, method: 'REGISTER' },
        contact: [{ uri: this.contactUri, params: { expires: String(expiresS) } }],
        expires: String(expiresS),
        'max-forwards': 70,
        'user-agent': this.deps.userAgent,
        allow: ALLOW,
      },
    };
  }

  /** One REGISTER; `challenged`: this one answers a challenge already (a second 401/407 is a failure). */
  private send(
    expiresS: number,
    challenged: boolean,
    done?: (rs: SipResponse) => void,
    prev?: SipResponse,
  ): void {
    const rq = this.request(expiresS);
    if (prev) digest.signRequest(this.authCtx, rq, prev, this.creds());
    else if ('nonce' in this.authCtx) digest.signRequest(this.authCtx, rq, null, this.creds());
    this.deps.send(rq, (rs) => {
      if (rs.status < 200) return;
      if ((rs.status === 401 || rs.status === 407) && !challenged) {
        this.send(expiresS, true, done, rs);
        return;
      }
      if (done) {
        done(rs);
        return;
      }
      if (this.stopped) return;
      if (rs.status < 300) this.onRegistered(rs, expiresS);
      else this.onFailed(rs);
    });
  }

  private creds(): { user: string; password: string } {
    return { user: this.cfg.username, password: this.cfg.password };
  }

  private onRegistered(rs: SipResponse, requestedS: number): void {
    this.failures = 0;
    const granted = this.grantedExpiresS(rs) ?? requestedS;
    this.expiresAtMs = Date.now() + granted * 1000;
    this.setState('registered');
    this.deps.logger.info(
      { event: 'sip.registered', trunk: this.cfg.trunk, registrar: this.cfg.registrar, expiresS: granted },
      'trunk registered',
    );
    this.schedule(refreshDelayS(granted) * 1000);
  }

  private onFailed(rs: SipResponse): void {
    const delays = this.deps.retryDelaysMs ?? [30_000, 60_000, 120_000, 300_000];
    const backoff = delays[Math.min(this.failures, delays.length - 1)] ?? 300_000;
    this.failures++;
    const retryAfterS = Number(String(rs.headers['retry-after'] ?? '').split(/[ ;(]/)[0]);
    const retryInMs = Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : backoff;
    const stillBound = this.expiresAtMs !== null && this.expiresAtMs > Date.now();
    if (!stillBound) this.setState('failed');
    this.deps.logger.warn(
      {
        event: 'sip.register_failed',
        trunk: this.cfg.trunk,
        registrar: this.cfg.registrar,
        status: rs.status,
        reason: rs.reason,
        retryInMs,
      },
      rs.status === 401 || rs.status === 407
        ? 'trunk registration refused: check the username and password'
        : 'trunk registration failed; retrying',
    );
    this.schedule(retryInMs);
  }

  /** The expiry the registrar granted our contact: its expires parameter, else Expires, else null. */
  private grantedExpiresS(rs: SipResponse): number | null {
    const contacts = Array.isArray(rs.headers.contact) ? rs.headers.contact : [];
    const ours = parseUri(this.contactUri);
    for (const c of contacts as { uri: string; params?: Record<string, unknown> }[]) {
      const u = parseUri(c.uri);
      if (!u || !ours || u.host !== ours.host || Number(u.port ?? 5060) !== Number(ours.port ?? 5060))
        continue;
      const e = Number(c.params?.expires);
      if (Number.isFinite(e) && e > 0) return e;
    }
    const e = Number(rs.headers.expires);
    return Number.isFinite(e) && e > 0 ? e : null;
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.send(this.cfg.expiresS, false);
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private setState(s: RegistrationState): void {
    if (this.state === s) return;
    this.state = s;
    this.deps.onState?.(s);
  }
}
