import { randomBytes, randomUUID } from 'node:crypto';
import type { LiveCall, LiveCallSource } from './api/live-calls.js';
import { sipResponses, sipTlsCertNotAfter, trunkRegistered } from './api/metrics.js';
import type { CallEventBus, CallId } from './call-events.js';
import type { Config } from './config/schema.js';
import type { DetectorEngine } from './detect/engine.js';
import { RepeatIndex, type RepeatEntry } from './detect/repeat-index.js';
import { FINGERPRINT_HOP_SAMPLES, fingerprintFrames } from './audio/audio-fingerprint.js';
import { loadG729 } from './audio/g729.js';
import { generateTone } from './audio/tone.js';
import type { Logger } from './log.js';
import { compileAddressList, type AddressMatcher } from './policy/address-match.js';
import { sameThresholds, type CallFacts, type CallPolicy } from './policy/evaluate.js';
import { knownCallerPolicy, protectKnownCaller, type CallerHistorySource } from './policy/known-callers.js';
import { g729Fallback, GatewayCall } from './gateway-call.js';
import type { MediaRelayLike, MediaSessionLike } from './gateway-types.js';
import { B2bua } from './sip/b2bua.js';
import { rewriteSdp } from './sip/sdp-rewrite.js';
import { Registration } from './sip/registration.js';
import { certNotAfter, loadSipTls } from './sip/tls-files.js';
import { pseudonymise } from './store/pseudonym.js';
import { hasSdp, type B2buaTarget } from './sip/b2bua-call.js';
import type { SipRemote, SipRequest } from './sip/sip-stack.js';
import { parseUri, transportParam } from './sip/sip-stack.js';

/**
 * The call orchestration: an INVITE from a trunk becomes facts, the policy decides, the media
 * is anchored, the call is relayed to the PBX and analysed from answer on (GatewayCall). Calls
 * from the PBX go out to the trunk anchored but not analysed unless config.sip.outbound.analyse.
 */
export interface GatewayDeps {
  config: Config;
  logger: Logger;
  bus: CallEventBus;
  policy: { evaluate(facts: CallFacts): CallPolicy };
  engine: DetectorEngine | null;
  /** null = signalling only (SDP passes with codecs filtered, no analysis). */
  relay: MediaRelayLike | null;
  /** Decoded announcement audio (8 kHz), loaded by the caller from config.actions. */
  warnAnnouncement?: Float32Array | null;
  dropAnnouncement?: Float32Array | null;
  /**
   * The store's keyed pseudonym of a number (store.pseudonym): what logs show instead of numbers
   * (privacy.pseudonymiseNumbers), and what `p:` list entries match. Without it, a key from the
   * config or one made for this process.
   */
  pseudonym?: (n: string) => string;
  /**
   * A caller's earlier calls (Store.callerHistory), for policy.knownCallers; without it no caller is
   * known. A fault here fails open: the call gets its normal policy.
   */
  callerHistory?: CallerHistorySource;
  /**
   * Where the repeated-audio fingerprints are kept across restarts (the Store), for
   * detector.repeat.persist; without it they live in memory only. A fault fails open: the index
   * starts empty, or a call is not written.
   */
  repeatStore?: RepeatStore;
}

/** The store's side of detector.repeat.persist (Store implements it). */
export interface RepeatStore {
  saveFingerprint(entry: RepeatEntry, keep: { sinceMs: number; calls: number }): void;
  recentFingerprints(sinceMs: number, limit: number): RepeatEntry[];
  deleteFingerprints(): number;
}

interface LiveEntry {
  call: GatewayCall;
  startedAtMs: number;
  answeredAtMs: number | null;
  fromNumber: string;
  toNumber: string;
  trunk: string | null;
  ruleId: string | null;
  direction: 'inbound' | 'outbound';
  treatment: 'analyse' | 'allow' | 'deny' | 'bypass';
  knownCaller: boolean;
}

export class Gateway {
  private config: Config;
  private readonly b2bua: B2bua;
  private readonly log: Logger;
  private readonly calls = new Map<CallId, LiveEntry>();
  private trunkMatchers: { name: string; match: AddressMatcher }[];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly publicAddress: string;
  /** SIP over TLS material as loaded at start (null without TLS). */
  private readonly sipTls: ReturnType<typeof loadSipTls>;
  private readonly listening: { port: number; userAgent: string };
  private readonly pseudonym: (n: string) => string;
  /** Recent calls' audio fingerprints (detector.repeat); null when off. */
  private repeats: RepeatIndex | null;
  /** Registrations of registration-based trunks (sip.trunks[].register); SIGHUP swaps changed ones. */
  registrations: Registration[];
  private closing = false;
  readonly live: LiveCallSource;

  constructor(private readonly deps: GatewayDeps) {
    this.config = deps.config;
    this.log = deps.logger;
    this.trunkMatchers = this.compileTrunks(deps.config);
    const sip = deps.config.sip;
    const publicAddress =
      sip.publicAddress ?? (sip.listen.host === '0.0.0.0' ? '127.0.0.1' : sip.listen.host);
    this.publicAddress = publicAddress;
    this.listening = { port: sip.listen.port, userAgent: sip.userAgent };
    // Never a fixed key: phone numbers are few enough to hash them all, so a public key would make
    // the pseudonyms in the logs readable by anyone.
    const key = deps.config.privacy.pseudonymKey ?? randomBytes(32).toString('hex');
    this.pseudonym = deps.pseudonym ?? ((n) => pseudonymise(key, n));
    this.repeats = repeatIndex(deps.config);
    this.loadRepeats(deps.config);
    const sipTls = loadSipTls(sip);
    if (sipTls) setCertExpiryGauge(sipTls.cert);
    this.b2bua = new B2bua({
      host: sip.listen.host,
      port: sip.listen.port,
      publicAddress,
      transports: sip.listen.transports,
      tls: sipTls,
      userAgent: sip.userAgent,
      logger: deps.logger.child({ layer: 'sip' }),
      onFinalInviteResponse: (status) => sipResponses.inc({ code: String(status) }),
      onInvite: (rq, remote) => {
        this.onInvite(rq, remote).catch((err: unknown) => {
          this.log.error({ event: 'call.setup_error', err: (err as Error).message }, 'call setup failed');
          this.b2bua.reply(rq, 500);
        });
      },
    });
    this.live = {
      list: () => this.listLive(),
      registrations: () =>
        this.registrations.map((r) => ({
          trunk: r.trunk,
          state: r.state,
          expiresAtMs: r.state === 'registered' ? r.expiresAtMs : null,
        })),
    };
    this.registrations = sip.trunks.filter((t) => t.register !== null).map((t) => this.registration(t));
    this.sipTls = sipTls;
    if (sip.pbx.srtp !== 'off' && sip.pbx.transport !== 'tls')
      this.log.warn(
        { event: 'sip.pbx_srtp_keys_in_clear', transport: sip.pbx.transport },
        `sip.pbx.srtp is ${sip.pbx.srtp} over a plain SIP transport: the SRTP keys toward the PBX can be read on the wire; use sip.pbx.transport tls`,
      );
    if (this.config.media.fallbackCodecs.includes('G729')) {
      const g729 = loadG729();
      if (g729.codec) this.log.info({ event: 'media.g729_ready' }, 'G.729 decoder loaded (bcg729)');
      else
        this.log.warn(
          {
            event: 'media.g729_unavailable',
            err: g729.error,
            undecodable: this.config.media.undecodable,
          },
          `no G.729 decoder: offers with only G.729 follow media.undecodable (${this.config.media.undecodable})`,
        );
    }
  }

  /**
   * The codec the caller's audio will be analysed in, from the INVITE's offer (media.codecs first,
   * then media.fallbackCodecs), for rules that match on it; null without SDP or without such a codec.
   */
  private offerCodec(rq: SipRequest): string | null {
    if (!rq.content) return null;
    const m = this.config.media;
    try {
      const media = rewriteSdp(rq.content, null, m.codecs, {}, 'keep', g729Fallback(m.fallbackCodecs)).media;
      return media.decodable ? media.codec : null;
    } catch {
      return null; // the SDP's faults are reported when the B2BUA rewrites it
    }
  }

  /** The media relay's counters (null without a relay): sessions and ports in use, packets relayed/dropped. */
  mediaStats(): ReturnType<MediaRelayLike['stats']> | null {
    return this.deps.relay?.stats() ?? null;
  }

  /** The detector engine's counters (null without a model): windows scored and shed, errors. */
  detectorStats(): ReturnType<DetectorEngine['stats']> | null {
    return this.deps.engine?.stats() ?? null;
  }

  /** Calls the repeated-audio index remembers now; null when detector.repeat is off. */
  repeatCalls(): number | null {
    return this.repeats?.size ?? null;
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  /**
   * SIGHUP: thresholds, actions, routing and log level apply to new calls, trunk registrations follow
   * at once (reloadRegistrations); listeners need a restart.
   */
  setConfig(config: Config): void {
    const listenKey = (c: Config) =>
      JSON.stringify([
        c.sip.listen.host,
        c.sip.listen.port,
        [...c.sip.listen.transports].sort(),
        c.sip.listen.tlsPort,
      ]);
    if (listenKey(config) !== listenKey(this.config)) {
      this.log.warn(
        { event: 'config.restart_required', key: 'sip.listen' },
        'listening address changed: takes effect after a restart',
      );
    }
    const before = this.config;
    this.config = config;
    this.trunkMatchers = this.compileTrunks(config);
    if (JSON.stringify(before.detector.repeat) !== JSON.stringify(config.detector.repeat)) {
      // A new index for the new settings; with persist it is refilled from the store (comparisons
      // run on the audible overlap, so fingerprints of another listenMs still compare).
      this.repeats = repeatIndex(config);
      this.log.info(
        { event: 'repeat.index_reset', enabled: config.detector.repeat.enabled },
        config.detector.repeat.enabled && config.detector.repeat.persist && this.deps.repeatStore
          ? 'repeated-audio settings changed: index rebuilt from the store'
          : 'repeated-audio settings changed: remembered calls forgotten',
      );
      this.loadRepeats(config);
    }
    this.reloadTls(config);
    this.reloadRegistrations(before, config);
  }

  /**
   * SIGHUP re-reads sip.tls's files and settings, so a renewed certificate, a new CA bundle or
   * changed verification (verifyPeers, requireClientCert, minVersion) apply without a restart (new
   * connections; open ones keep theirs). A file that does not load keeps the running material and
   * settings, all of them: half a change would be worse than none.
   */
  private reloadTls(config: Config): void {
    const running = this.b2bua.tlsSettings; // null unless SIP over TLS listens
    if (!this.config.sip.listen.transports.includes('tls') || !running) return;
    const t = config.sip.tls;
    // Against what runs, not the previous config: a reload that failed left its settings unapplied.
    const changed = (['verifyPeers', 'requireClientCert', 'minVersion'] as const).filter(
      (k) => t[k] !== running[k],
    );
    try {
      const material = loadSipTls({ ...config.sip, listen: { ...config.sip.listen, transports: ['tls'] } });
      if (!material) return;
      this.b2bua.reloadTls(material);
      setCertExpiryGauge(material.cert);
      this.log.info(
        {
          event: 'sip.tls_reloaded',
          certFile: t.certFile,
          notAfter: certNotAfter(material.cert),
          verifyPeers: t.verifyPeers,
          requireClientCert: t.requireClientCert,
          minVersion: t.minVersion,
          ...(changed.length ? { changed } : {}),
        },
        changed.length
          ? `SIP over TLS re-read: ${changed.join(', ')} changed`
          : 'SIP over TLS certificate re-read',
      );
    } catch (err) {
      this.log.error(
        { event: 'sip.tls_reload_error', err: (err as Error).message },
        'SIP over TLS certificate not reloaded: the running one stays',
      );
    }
  }

  /** Erased calls (a data subject's request) leave the repeated-audio index too; returns how many it held. */
  forgetCalls(callIds: readonly string[]): number {
    return this.repeats?.forget(callIds) ?? 0;
  }

  /**
   * Fills a new repeat index from the store (detector.repeat.persist), or deletes the stored
   * fingerprints when they are not to be kept (the check or persist off). Fails open: a store
   * fault is logged and the index starts with what it has.
   */
  private loadRepeats(config: Config): void {
    const store = this.deps.repeatStore;
    const r = config.detector.repeat;
    if (!store) return;
    try {
      if (!r.enabled || !r.persist) {
        const rows = store.deleteFingerprints();
        if (rows)
          this.log.info(
            { event: 'repeat.fingerprints_deleted', rows },
            'stored fingerprints deleted (detector.repeat persist or enabled is off)',
          );
        return;
      }
      if (!this.repeats) return;
      const startedAt = performance.now();
      const entries = store.recentFingerprints(Date.now() - r.windowMinutes * 60_000, r.maxCalls);
      const calls = this.repeats.restore(entries);
      this.log.info(
        { event: 'repeat.index_restored', calls, ms: Math.round(performance.now() - startedAt) },
        'repeated-audio index loaded from the store',
      );
    } catch (err) {
      this.log.error(
        { event: 'repeat.restore_error', err: (err as Error).message, calls: this.repeats?.size ?? 0 },
        'stored fingerprints not loaded: the repeat index starts with what it has',
      );
    }
  }

  private registration(t: Config['sip']['trunks'][number]): Registration {
    trunkRegistered.set({ trunk: t.name }, 0);
    return new Registration(
      { trunk: t.name, ...t.register! },
      {
        send: (rq, onResponse) => this.b2bua.request(rq, onResponse),
        contactHost: this.publicAddress,
        // What the SIP stack runs with: a changed listen address or User-Agent waits for a restart.
        contactPort: this.listening.port,
        contactTlsPort: this.b2bua.tlsPort,
        userAgent: this.listening.userAgent,
        logger: this.log.child({ layer: 'sip' }),
        onState: (state) => trunkRegistered.set({ trunk: t.name }, state === 'registered' ? 1 : 0),
      },
    );
  }

  /**
   * SIGHUP: a trunk whose `register` block is new starts registering, one whose block is gone removes
   * its binding, and one whose block changed does both, in that order (the same Contact is bound, so
   * the removal must not come after the new binding). Unchanged registrations go on untouched.
   */
  private reloadRegistrations(before: Config, after: Config): void {
    const block = (c: Config, name: string) => {
      const t = c.sip.trunks.find((x) => x.name === name && x.register !== null);
      return t ? JSON.stringify(t.register) : null;
    };
    const keep = this.registrations.filter((r) => block(after, r.trunk) === block(before, r.trunk));
    const stopping = this.registrations.filter((r) => !keep.includes(r));
    const starting = after.sip.trunks.filter(
      (t) => t.register !== null && !keep.some((r) => r.trunk === t.name),
    );
    if (stopping.length === 0 && starting.length === 0) return;
    this.log.info(
      {
        event: 'sip.registrations_reloaded',
        stopped: stopping.map((r) => r.trunk),
        started: starting.map((t) => t.name),
        unchanged: keep.map((r) => r.trunk),
      },
      'trunk registrations follow the new configuration',
    );
    this.registrations = keep;
    void (async () => {
      await Promise.all(stopping.map((r) => r.stop()));
      for (const r of stopping)
        if (!starting.some((t) => t.name === r.trunk)) trunkRegistered.remove({ trunk: r.trunk });
      if (this.closing) return;
      for (const t of starting) {
        const r = this.registration(t);
        this.registrations.push(r);
        r.start();
      }
    })();
  }

  private compileTrunks(config: Config): { name: string; match: AddressMatcher }[] {
    return config.sip.trunks.map((t) => ({ name: t.name, match: compileAddressList(t.addresses) }));
  }

  /**
   * policy.knownCallers: an inbound analysed caller whose earlier calls were human conversations gets
   * the policy with its actions capped (policy/known-callers.ts). The lookup is one indexed query on
   * the main thread; if it fails, the call keeps its normal policy.
   */
  private knownCallerPolicy(
    policy: CallPolicy,
    fromNumber: string,
    direction: 'inbound' | 'outbound',
    log: Logger,
  ): CallPolicy {
    const k = this.config.policy.knownCallers;
    const history = this.deps.callerHistory;
    if (!history || direction !== 'inbound') return policy;
    let capped: CallPolicy;
    try {
      capped = knownCallerPolicy(policy, fromNumber, k, history, Date.now());
    } catch (err) {
      log.warn(
        { event: 'call.known_caller_error', err: (err as Error).message },
        'caller history not read; normal policy',
      );
      return policy;
    }
    const known = capped.knownCaller;
    if (known) {
      log.info(
        {
          event: 'call.known_caller',
          calls: known.calls,
          humanLabels: known.humanLabels,
          lastCallId: known.lastCallId,
          capAction: capped.maxAction,
        },
        'known caller: actions capped',
      );
    }
    return capped;
  }

  private hideNumber(n: string): string {
    return this.config.privacy.pseudonymiseNumbers ? this.pseudonym(n) : n;
  }

  private async onInvite(rq: SipRequest, remote: SipRemote): Promise<void> {
    const cfg = this.config;
    const callId = randomUUID();
    const log = this.log.child({ callId });
    const fromNumber = parseUri(rq.headers.from.uri)?.user ?? '';
    const toNumber = parseUri(rq.uri)?.user ?? parseUri(rq.headers.to.uri)?.user ?? '';
    // The PBX is known by address and port (source port, or its Via sent-by port over TCP where
    // the source port is ephemeral): a PBX and trunks (or test peers) may share one host.
    const pbxHost = remote.address === cfg.sip.pbx.host || remote.address === `::ffff:${cfg.sip.pbx.host}`;
    const viaPort = Number(rq.headers.via[rq.headers.via.length - 1]?.port ?? 5060);
    const fromPbx = pbxHost && (remote.port === cfg.sip.pbx.port || viaPort === cfg.sip.pbx.port);
    const trunk = fromPbx ? null : (this.trunkMatchers.find((t) => t.match(remote.address))?.name ?? null);
    if (!fromPbx && trunk === null) {
      log.warn(
        { event: 'sip.unknown_source', source: remote.address },
        'INVITE from an address that is neither a trunk nor the PBX',
      );
      this.b2bua.reply(rq, 403);
      return;
    }
    const sips = /^sips:/i.test(rq.uri);
    let target: B2buaTarget;
    let direction: 'inbound' | 'outbound';
    if (fromPbx) {
      if (!cfg.sip.outbound.enabled) {
        this.b2bua.reply(rq, 403);
        return;
      }
      direction = 'outbound';
      const ruri = parseUri(rq.uri);
      const t = cfg.sip.outbound.trunk;
      // A sips: URI is TLS by definition (RFC 3261 26.2), on 5061 unless it names a port.
      const uriTransport = String(ruri?.params.transport ?? (sips ? 'tls' : 'udp')).toLowerCase();
      target = t
        ? { host: t.host, port: t.port, transport: t.transport }
        : {
            host: ruri?.host ?? '',
            port: ruri?.port ?? (uriTransport === 'tls' ? 5061 : 5060),
            transport: uriTransport === 'tcp' || uriTransport === 'tls' ? uriTransport : 'udp',
          };
      if (
        target.port === cfg.sip.listen.port &&
        (target.host === this.publicAddress || target.host === cfg.sip.listen.host)
      ) {
        log.warn({ event: 'sip.loop', target }, 'outbound call addressed to the gateway itself');
        this.b2bua.reply(rq, 482, 'Loop Detected');
        return;
      }
    } else {
      direction = 'inbound';
      target = { host: cfg.sip.pbx.host, port: cfg.sip.pbx.port, transport: cfg.sip.pbx.transport };
    }
    // A sips: Request-URI asks for TLS on every hop (RFC 3261 26.2). Forwarding it over a plain leg
    // would downgrade the call behind the caller's back, so it is served only TLS in and TLS out.
    const arrivedOver = remote.protocol.toLowerCase();
    if (sips && (arrivedOver !== 'tls' || target.transport !== 'tls')) {
      log.warn(
        { event: 'sip.sips_refused', direction, arrivedOver, nextHop: target.transport },
        'sips: request refused: voiceguard cannot keep both of its legs on TLS',
      );
      this.b2bua.reply(rq, 416, 'Unsupported URI Scheme', {
        warning: `399 voiceguard "sips needs TLS on both legs; this call would use ${arrivedOver} in and ${target.transport} out"`,
      });
      return;
    }
    const facts: CallFacts = {
      trunk,
      sourceAddress: remote.address,
      fromNumber,
      fromPseudonym: this.pseudonym(fromNumber),
      toNumber,
      at: new Date(),
      codec: this.offerCodec(rq),
    };
    const policy = this.knownCallerPolicy(this.deps.policy.evaluate(facts), fromNumber, direction, log);
    const analyse = policy.treatment === 'analyse' && (direction === 'inbound' || cfg.sip.outbound.analyse);
    const treatment = direction === 'outbound' && !cfg.sip.outbound.analyse ? 'bypass' : policy.treatment;
    log.info(
      {
        event: 'call.started',
        direction,
        trunk,
        source: remote.address,
        transport: remote.protocol.toLowerCase(),
        target: `${target.host}:${target.port}${transportParam(target.transport)}`,
        from: cfg.privacy.pseudonymiseNumbers ? facts.fromPseudonym : fromNumber,
        to: this.hideNumber(toNumber),
        treatment,
        ...(policy.codecBounds ? { codecBounds: policy.codecBounds } : {}),
        // A list entry's pattern may be the caller's number: name the entry instead.
        rule:
          policy.listEntryId && cfg.privacy.pseudonymiseNumbers
            ? `${policy.treatment === 'deny' ? 'deny' : 'allow'} list entry ${policy.listEntryId}`
            : policy.ruleName,
      },
      'new call',
    );
    this.deps.bus.emit('call.started', {
      callId,
      atMs: Date.now(),
      direction,
      trunk,
      sourceAddress: remote.address,
      fromNumber,
      toNumber,
      sipCallId: rq.headers['call-id'],
      ruleId: policy.ruleId,
      treatment,
      knownCaller: policy.knownCaller ?? null,
    });
    if (policy.treatment === 'deny') {
      const status = policy.denyStatus ?? 603;
      this.b2bua.reply(rq, status);
      log.info({ event: 'call.ended', reason: 'rejected', sipStatus: status }, 'denied by policy');
      this.deps.bus.emit('call.action', {
        callId,
        atMs: Date.now(),
        action: 'drop',
        reason: `denied by rule ${policy.ruleName}`,
      });
      this.deps.bus.emit('call.ended', { callId, atMs: Date.now(), reason: 'rejected', sipStatus: status });
      return;
    }
    let media: MediaSessionLike | null = null;
    if (this.deps.relay) {
      try {
        media = await this.deps.relay.allocate(callId);
      } catch (err) {
        // No ports (or a relay fault): refuse this call cleanly rather than relay media we cannot anchor.
        log.error(
          { event: 'media.allocate_failed', err: (err as Error).message },
          'no media session; call refused',
        );
        this.b2bua.reply(rq, 503, 'Service Unavailable');
        this.deps.bus.emit('call.ended', { callId, atMs: Date.now(), reason: 'error', sipStatus: 503 });
        return;
      }
    }
    if (media) {
      log.debug(
        { event: 'media.allocated', a: media.local('a').rtpPort, b: media.local('b').rtpPort },
        'media ports allocated',
      );
    }
    const a = cfg.actions;
    const warnAudio =
      this.deps.warnAnnouncement ??
      concat([
        generateTone({
          frequenciesHz: [a.warnToneHz[0]!],
          durationMs: a.warnToneMs,
          sampleRateHz: 8000,
          levelDbfs: -12,
          rampMs: 10,
        }),
        new Float32Array(800),
        generateTone({
          frequenciesHz: [a.warnToneHz[1]!],
          durationMs: a.warnToneMs,
          sampleRateHz: 8000,
          levelDbfs: -12,
          rampMs: 10,
        }),
      ]);
    const entry: LiveEntry = {
      call: undefined as unknown as GatewayCall,
      startedAtMs: Date.now(),
      answeredAtMs: null,
      fromNumber,
      toNumber,
      trunk,
      ruleId: policy.ruleId,
      direction,
      treatment,
      knownCaller: !!policy.knownCaller,
    };
    const gcall = new GatewayCall({
      callId,
      config: cfg,
      logger: log,
      bus: this.deps.bus,
      policy,
      engine: this.deps.engine,
      media,
      analyse,
      warnAudio,
      dropAudio: this.deps.dropAnnouncement ?? null,
      pbxLeg: direction === 'inbound' ? 'b' : 'a',
      // A delayed offer: the rules (some name codecs) and the model's bounds per codec are applied again
      // once the answer names the codec. List entries match numbers only: a call a list decided stays so.
      decideWithCodec:
        hasSdp(rq) || policy.listEntryId !== undefined
          ? null
          : (codec) => {
              const raw = this.deps.policy.evaluate({ ...facts, codec });
              // The INVITE's rule and bounds stand.
              if (raw.ruleId === policy.ruleId && sameThresholds(raw.thresholds, policy.thresholds))
                return null;
              // The caller's history was read for the INVITE's policy if it analysed: the same cap
              // applies to the new rule, without a second read (or a second call.known_caller line).
              const next =
                policy.treatment === 'analyse'
                  ? protectKnownCaller(raw, policy.knownCaller ?? null, cfg.policy.knownCallers.capAction)
                  : this.knownCallerPolicy(raw, fromNumber, direction, log);
              const nextAnalyse =
                next.treatment === 'analyse' && (direction === 'inbound' || cfg.sip.outbound.analyse);
              const nextTreatment =
                direction === 'outbound' && !cfg.sip.outbound.analyse
                  ? 'bypass'
                  : next.treatment === 'analyse'
                    ? 'analyse'
                    : 'allow';
              entry.ruleId = next.ruleId;
              entry.treatment = nextTreatment;
              return { policy: next, analyse: nextAnalyse, treatment: nextTreatment };
            },
      repeats: this.repeats
        ? {
            index: this.repeats,
            listenMs: cfg.detector.repeat.listenMs,
            minOtherCallers: cfg.detector.repeat.minOtherCallers,
            callerKey: facts.fromPseudonym ?? fromNumber,
            persist:
              cfg.detector.repeat.persist && this.deps.repeatStore
                ? persistRepeat(this.deps.repeatStore, cfg.detector.repeat)
                : null,
          }
        : null,
      onFinished: () => {
        this.calls.delete(callId);
        if (this.calls.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      },
    });
    entry.call = gcall;
    this.calls.set(callId, entry);
    const sipCall = this.b2bua.createCall({
      logger: log,
      invite: rq,
      remote,
      target,
      inviteTimeoutMs: cfg.sip.inviteTimeoutMs,
      ackTimeoutMs: cfg.sip.ackTimeoutMs,
      timerT1Ms: cfg.sip.timerT1Ms,
      enforceSessionExpiry: cfg.sip.enforceSessionExpiry,
      maxDurationMs: cfg.sip.maxCallSeconds * 1000,
      delegate: { rewriteSdp: (from, sdp, kind) => gcall.rewrite(from, sdp, kind) },
    });
    gcall.attach(sipCall);
    sipCall.on('answered', () => {
      entry.answeredAtMs = Date.now();
    });
    try {
      sipCall.start();
    } catch (err) {
      log.warn({ event: 'sip.sdp_error', err: (err as Error).message }, 'offer refused');
      sipCall.reject(488, 'error');
    }
  }

  private listLive(): LiveCall[] {
    return [...this.calls.entries()].map(([id, e]) => ({
      id,
      direction: e.direction,
      trunk: e.trunk,
      fromNumber: e.fromNumber,
      toNumber: e.toNumber,
      ruleId: e.ruleId,
      treatment: e.treatment,
      startedAtMs: e.startedAtMs,
      answeredAtMs: e.answeredAtMs,
      codec: e.call.codec,
      cumulativeLlr: e.call.latestLlr,
      lastScoreTMs: null,
      recentScores: [],
      verdict: (e.call.verdict as LiveCall['verdict']) ?? null,
      actions: [...e.call.taken],
      knownCaller: e.knownCaller,
    }));
  }

  /** Stop taking calls (503), wait for live calls to end up to `timeoutMs`, then hang up the rest. */
  async drain(timeoutMs: number): Promise<void> {
    this.b2bua.draining = true;
    if (this.calls.size > 0) {
      this.log.info({ event: 'gateway.draining', calls: this.calls.size, timeoutMs }, 'draining live calls');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const e of [...this.calls.values()]) e.call.hangup('shutdown');
    // Give the BYEs a moment to leave before the sockets close.
    if (this.calls.size > 0 || timeoutMs > 0) await new Promise((r) => setTimeout(r, 200));
  }

  /**
   * Resolves once SIP listens on every configured transport, then registers with the trunks that
   * ask for it; rejects with one line (see SipStack.listening) when a port cannot be had.
   */
  async listen(): Promise<void> {
    await this.b2bua.listening();
    const listen = this.config.sip.listen;
    this.log.info(
      {
        event: 'sip.listening',
        host: listen.host,
        port: listen.port,
        transports: listen.transports,
        ...(this.sipTls
          ? { tlsPort: this.sipTls.port, tlsCertNotAfter: certNotAfter(this.sipTls.cert) }
          : {}),
      },
      'SIP listening',
    );
    for (const r of this.registrations) r.start();
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const e of [...this.calls.values()]) e.call.finish('shutdown', null);
    // Remove the trunk bindings while the SIP stack can still send (at most 2 s).
    await Promise.all(this.registrations.map((r) => r.stop()));
    await this.b2bua.close();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Writes a remembered call's fingerprint through the store, with what the index can still hold. */
function persistRepeat(store: RepeatStore, r: Config['detector']['repeat']): (entry: RepeatEntry) => void {
  return (entry) =>
    store.saveFingerprint(entry, { sinceMs: entry.atMs - r.windowMinutes * 60_000, calls: r.maxCalls });
}

/** The repeated-audio index that config.detector.repeat asks for (null when off). */
function repeatIndex(config: Config): RepeatIndex | null {
  const r = config.detector.repeat;
  if (!r.enabled) return null;
  return new RepeatIndex({
    maxCalls: r.maxCalls,
    windowMs: r.windowMinutes * 60_000,
    maxFrames: fingerprintFrames(r.listenMs * 8),
    maxBitErrorRate: r.maxBitErrorRate,
    // At least one second of audible overlap, so that a match rests on enough bits.
    minOverlapFrames: Math.round(8000 / FINGERPRINT_HOP_SAMPLES),
  });
}

/** voiceguard_sip_tls_cert_not_after_seconds from the certificate SIP over TLS presents. */
function setCertExpiryGauge(cert: Buffer): void {
  const notAfter = certNotAfter(cert);
  if (notAfter) sipTlsCertNotAfter.set(Date.parse(notAfter) / 1000);
}
