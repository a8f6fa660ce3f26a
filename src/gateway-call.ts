import { loadG729 } from './audio/g729.js';
import type { CallEventBus, CallId } from './call-events.js';
import type { Config, PolicyAction } from './config/schema.js';
import type { DetectorEngine } from './detect/engine.js';
import type { DetectorStream } from './detect/detector-stream.js';
import type { RepeatEntry, RepeatIndex } from './detect/repeat-index.js';
import { fingerprint } from './audio/audio-fingerprint.js';
import type { Logger } from './log.js';
import { decideAction, decideOnDetectorError, type CallPolicy, type Decision } from './policy/evaluate.js';
import type { MediaSessionLike } from './gateway-types.js';
import type { B2buaCall, LegName } from './sip/b2bua-call.js';
import {
  readSdp,
  rewriteSdp,
  SdpError,
  type SdesCrypto,
  type SdpMediaInfo,
  type SdpSecurityRewrite,
} from './sip/sdp-rewrite.js';
import { inlineKey, newSrtpKey, parseInlineKey, type SrtpKey, type SrtpSuite } from './media/srtp.js';
import type { SrtpLegKeys } from './media/media-types.js';

/**
 * The story of one analysed call after the policy said "analyse": anchor the media, open a
 * detector stream at answer (or 183), feed it the caller's audio, and turn scores and the
 * verdict into actions. Every path that ends the call runs `finish()` exactly once, which
 * closes the media session, the detector stream and the timers.
 */
export interface GatewayCallDeps {
  callId: CallId;
  config: Config;
  logger: Logger;
  bus: CallEventBus;
  policy: CallPolicy;
  engine: DetectorEngine | null;
  media: MediaSessionLike | null;
  analyse: boolean;
  warnAudio: Float32Array;
  dropAudio: Float32Array | null;
  /** Repeated-audio check (detector.repeat); null when off. */
  repeats: RepeatCheck | null;
  /** The leg toward the company PBX: b for inbound calls, a for calls the PBX places. */
  pbxLeg: LegName;
  /**
   * A delayed offer (an INVITE without SDP): no codec was known when the policy was decided, so the
   * caller's answer (in the ACK, or a PRACK) decides it again with the codec, for rules that match on
   * codecs; it returns null when the INVITE's rule stands. Null for an INVITE with an offer.
   */
  decideWithCodec?: ((codec: string) => CodecDecision | null) | null;
  onFinished(): void;
}

/** The policy decided again with the call's codec (GatewayCallDeps.decideWithCodec). */
export interface CodecDecision {
  policy: CallPolicy;
  analyse: boolean;
  treatment: 'analyse' | 'allow' | 'bypass';
}

export interface RepeatCheck {
  index: RepeatIndex;
  /** Caller audio fingerprinted (ms from the start of analysis). */
  listenMs: number;
  minOtherCallers: number;
  /** The caller's pseudonym: repeats by one caller do not count toward minOtherCallers. */
  callerKey: string;
  /** Keeps the remembered call's fingerprint across restarts (detector.repeat.persist); null: memory only. */
  persist?: ((entry: RepeatEntry) => void) | null;
}

/** Why a call is dropped: its voice, or its audio repeating other callers' calls. */
type DropCause = 'voice' | 'repeat';

/** The Reason headers of a drop's BYEs (RFC 3326), toward the caller (a) and the PBX (b). */
const DROP_REASONS: Record<DropCause, { a: string; b: string }> = {
  voice: {
    a: 'Q.850;cause=21;text="synthetic voice detected"',
    b: 'SIP;cause=603;text="voiceguard: synthetic voice"',
  },
  repeat: {
    a: 'Q.850;cause=21;text="recorded audio repeated across calls"',
    b: 'SIP;cause=603;text="voiceguard: repeated audio"',
  },
};

/** A call ending with less caller audio than this is not compared or remembered. */
const MIN_REPEAT_AUDIO_MS = 2000;
/** How long after listenMs the repeat check waits for audio that is late or never comes. */
const REPEAT_SLACK_MS = 1000;

export type LiveState = 'ringing' | 'early' | 'answered' | 'ended';

export class GatewayCall {
  state: LiveState = 'ringing';
  latestLlr: number | null = null;
  verdict: string | null = null;
  codec: string | null = null;
  readonly taken = new Set<PolicyAction>();
  /** Actions the policy named and a known caller's cap made weaker (recorded once each). */
  private readonly spared = new Set<PolicyAction>();
  private stream: DetectorStream | null = null;
  private sip: B2buaCall | null = null;
  private finished = false;
  private retained: Int16Array[] = [];
  private retainedSamples = 0;
  /** Caller audio collected for the repeated-audio check; null once checked (or when off). */
  private repeatAudio: Float32Array | null = null;
  private repeatSamples = 0;
  /** Runs the repeat check on what came in when the caller's RTP stops short of listenMs. */
  private repeatTimer: NodeJS.Timeout | null = null;
  /** The call's media is SRTP relayed encrypted, or in a codec the detector cannot decode: never analysed. */
  private unanalysable = false;
  /** Per leg: the SRTP offer being answered (null: its last offer was plain). */
  private readonly srtpPending: Partial<
    Record<LegName, { keys: SrtpLegKeys; profile: string; tag: number } | null>
  > = {};
  /** Our SRTP key toward each leg, kept across re-offers. */
  private readonly srtpLocal: Partial<Record<LegName, SrtpKey>> = {};
  private readonly srtpOn = new Set<LegName>();
  /**
   * sip.pbx.srtp 'sdes' or 'best-effort': the keys we offer the PBX, one per suite under tags 1..n, kept across
   * re-offers; null until the first offer toward the PBX. `pbxOfferOut`: its answer is awaited.
   */
  private pbxKeys: { tag: number; key: SrtpKey }[] | null = null;
  private pbxOfferOut = false;
  /** sip.pbx.srtp 'best-effort': the PBX's plain answer was logged (once, unless SRTP came between). */
  private pbxPlainLogged = false;

  /** The call's policy: the INVITE's, or the one the answer's codec chose (a delayed offer). */
  private policy: CallPolicy;
  private analyse: boolean;
  /** A delayed offer whose answer has not come yet: analysis and the answered event wait for it. */
  private awaitingAnswer: boolean;
  /** When the call was answered (200 to the caller); null before, or once call.answered is out. */
  private answeredAtMs: number | null = null;

  constructor(private readonly d: GatewayCallDeps) {
    this.policy = d.policy;
    this.analyse = d.analyse;
    this.awaitingAnswer = !!d.decideWithCodec;
  }

  /** The SDP rewriting the B2BUA calls for every offer and answer. */
  rewrite(from: LegName, sdp: string, kind: 'offer' | 'answer' = 'offer'): string {
    const out = this.rewriteSdp(from, sdp, kind);
    // A delayed offer's answer comes from the leg that sent the INVITE: a.
    if (this.awaitingAnswer && kind === 'answer' && from === 'a') this.settleCodecRule();
    return out;
  }

  private rewriteSdp(from: LegName, sdp: string, kind: 'offer' | 'answer'): string {
    const to: LegName = from === 'a' ? 'b' : 'a';
    const media = this.d.media;
    const codecs = this.d.config.media.codecs;
    const undecodable = this.d.config.media.undecodable === 'relay' ? 'keep' : 'refuse';
    const fallback = g729Fallback(this.d.config.media.fallbackCodecs);
    if (!media || media.closed) {
      const out = rewriteSdp(sdp, null, codecs, {}, undecodable, fallback);
      if (out.media.codec) this.codec = out.media.codec;
      return out.sdp;
    }
    const l = media.local(to);
    const pub = this.d.config.media.publicAddress ?? this.d.config.sip.publicAddress ?? l.address;
    const { security, terminated } = this.srtpTermination(from, to, sdp, kind);
    const out = rewriteSdp(
      sdp,
      { address: pub, rtpPort: l.rtpPort },
      codecs,
      security,
      undecodable,
      fallback,
    );
    if (!terminated) this.checkSrtp(from, out.media.srtp);
    if (!out.media.decodable) {
      const offered = Object.values(out.media.payloadMap).filter((n) => n !== 'telephone-event');
      this.stopAnalysing(
        { event: 'media.codec_not_analysed', leg: from, codecs: offered },
        `not analysed: the ${kind} has none of media.codecs or media.fallbackCodecs (${offered.join(', ')}); relayed as it is (media.undecodable: relay)`,
      );
    }
    media.setRemote(from, out.media.remote);
    media.setPayloadMap(from, out.media.payloadMap);
    media.setDirection(from, out.media.direction);
    if (out.media.codec) this.codec = out.media.codec;
    return out.sdp;
  }

  /**
   * media.srtp 'terminate': an SRTP offer (SDES) from leg X, required or best-effort, is answered with
   * SRTP and our own key, while the other leg gets the same offer as plain RTP. The relay decrypts what X
   * sends with X's key and encrypts what goes to X with ours; the fork hears plain audio. Each
   * leg's keys are kept across re-offers with the same key (the rollover counters go on).
   * sip.pbx.srtp 'sdes': an offer that reaches the PBX as plain RTP gets our keys instead, and the
   * PBX's answer must take one of them; 'best-effort' offers the keys on RTP/AVP, and an answer
   * without keys keeps that leg plain.
   */
  private srtpTermination(
    from: LegName,
    to: LegName,
    sdp: string,
    kind: 'offer' | 'answer',
  ): { security: SdpSecurityRewrite; terminated: boolean } {
    const terminate = this.d.config.media.srtp === 'terminate';
    if (kind === 'answer') {
      // The PBX answering our SRTP offer: its key for the relay; the other leg gets plain RTP.
      const pbxAnswered = from === this.d.pbxLeg && this.pbxOfferOut;
      if (pbxAnswered) this.acceptPbxAnswer(from, sdp);
      const plain: SdpSecurityRewrite = pbxAnswered ? { plain: true } : {};
      if (!terminate) return { security: plain, terminated: pbxAnswered };
      // The answer goes to the leg that offered: SRTP with our key if that offer was terminated.
      const p = this.srtpPending[to];
      if (p === null && this.srtpOn.has(to)) {
        this.srtpOn.delete(to);
        this.d.media?.setSrtp(to, null);
      }
      if (!p) return { security: plain, terminated: pbxAnswered };
      const keyParams = inlineKey(p.keys.local.keySalt);
      return {
        security: {
          secure: { profile: p.profile, crypto: [{ tag: p.tag, suite: p.keys.local.suite, keyParams }] },
        },
        terminated: pbxAnswered,
      };
    }
    if (from === this.d.pbxLeg) this.pbxOfferOut = false;
    const seen = readSdp(sdp);
    let terminated = false;
    if (terminate) {
      // Required SRTP, and best-effort SRTP (keys on RTP/AVP) with a key voiceguard can take: the
      // leg stays encrypted. Best-effort keys it cannot take are removed (plain RTP), not refused.
      const key = this.sdesKey(seen);
      if (seen.srtp === 'required' || (seen.srtp === 'declined' && key)) {
        this.terminateOffer(from, seen, key);
        terminated = true;
      } else this.srtpPending[from] = null;
    }
    // What reaches the PBX as plain RTP goes as SRTP with our keys (an offer relayed encrypted,
    // media.srtp 'relay', keeps the caller's keys: voiceguard cannot re-encrypt it).
    if (
      to === this.d.pbxLeg &&
      this.d.config.sip.pbx.srtp !== 'off' &&
      (terminated || seen.srtp !== 'required')
    ) {
      this.pbxOfferOut = true;
      return { security: { plain: true, secure: this.pbxOffer(seen.profile) }, terminated };
    }
    return { security: terminated ? { plain: true } : {}, terminated };
  }

  /** The offer's first SDES key in a suite of media.srtpSuites, without lifetime or MKI. */
  private sdesKey(seen: SdpMediaInfo): SdesCrypto | undefined {
    const allowed = this.d.config.media.srtpSuites as readonly string[];
    return seen.crypto.find((c) => allowed.includes(c.suite) && /^inline:[^|]+$/.test(c.keyParams.trim()));
  }

  /** An SRTP offer from `from`: take `chosen`, its first key in media.srtpSuites (sdesKey), answer with ours. */
  private terminateOffer(from: LegName, seen: SdpMediaInfo, chosen: SdesCrypto | undefined): void {
    if (!chosen) {
      this.d.logger.warn(
        { event: 'media.srtp_refused', leg: from, suites: seen.crypto.map((c) => c.suite) },
        'SRTP offer without a suite voiceguard supports: refused',
      );
      throw new SdpError(
        `the offer requires SRTP with ${seen.crypto.map((c) => c.suite).join(', ') || 'no SDES key (DTLS?)'}; voiceguard terminates ${this.d.config.media.srtpSuites.join(', ')} (media.srtpSuites) with SDES inline keys`,
      );
    }
    const suite = chosen.suite as SrtpSuite;
    let remote: Buffer;
    try {
      remote = parseInlineKey(chosen.keyParams, suite);
    } catch (err) {
      throw new SdpError((err as Error).message);
    }
    let local = this.srtpLocal[from];
    if (!local || local.suite !== suite) local = this.srtpLocal[from] = newSrtpKey(suite);
    const keys: SrtpLegKeys = {
      remote: { suite, keySalt: remote },
      local: { suite, keySalt: local.keySalt },
    };
    this.srtpPending[from] = { keys, profile: seen.profile, tag: chosen.tag };
    // Keys from the offer on: SRTP can flow (early media) before the answer reaches the offerer.
    this.d.media?.setSrtp(from, keys);
    if (!this.srtpOn.has(from))
      this.d.logger.info(
        { event: 'media.srtp_terminated', leg: from, suite, profile: seen.profile },
        'SRTP terminated on this leg: decrypted for the relay and the detector',
      );
    this.srtpOn.add(from);
  }

  /**
   * Our SRTP offer toward the PBX, one key per configured suite: on the secure form of `profile`
   * (sip.pbx.srtp 'sdes'), or on its plain form (best-effort SRTP: 'best-effort').
   */
  private pbxOffer(profile: string): { profile: string; crypto: SdesCrypto[] } {
    this.pbxKeys ??= this.d.config.media.srtpSuites.map((suite, i) => ({
      tag: i + 1,
      key: newSrtpKey(suite),
    }));
    const plain = /SAVPF$/i.test(profile) ? 'RTP/AVPF' : /SAVP$/i.test(profile) ? 'RTP/AVP' : profile;
    const secure = /SAVP/i.test(profile) ? profile : profile.replace(/AVP(F?)$/i, 'SAVP$1');
    return {
      profile: this.d.config.sip.pbx.srtp === 'best-effort' ? plain : secure,
      crypto: this.pbxKeys.map(({ tag, key }) => ({
        tag,
        suite: key.suite,
        keyParams: inlineKey(key.keySalt),
      })),
    };
  }

  /**
   * The PBX's answer to our SRTP offer must take one of our keys, by tag and suite (RFC 4568
   * 5.1.2). With sip.pbx.srtp 'best-effort' an answer without keys on a plain profile declines
   * SRTP: that leg runs plain RTP. Anything else cannot carry the call: an SdpError, which ends it.
   */
  private acceptPbxAnswer(leg: LegName, sdp: string): void {
    const seen = readSdp(sdp);
    const mode = this.d.config.sip.pbx.srtp;
    if (mode === 'best-effort' && seen.srtp === 'none') {
      const wasOn = this.srtpOn.delete(leg);
      if (wasOn) this.d.media?.setSrtp(leg, null);
      if (wasOn || !this.pbxPlainLogged)
        this.d.logger.info(
          { event: 'media.srtp_pbx_declined', leg, profile: seen.profile },
          'the PBX answered the best-effort SRTP offer without a key: plain RTP toward the PBX',
        );
      this.pbxPlainLogged = true;
      return;
    }
    const c = seen.srtp !== 'none' ? seen.crypto[0] : undefined;
    const ours = c && this.pbxKeys?.find((k) => k.tag === c.tag && k.key.suite === c.suite);
    if (!c || !ours) {
      const got = c ? `${c.suite} under tag ${c.tag}` : `${seen.profile} without an SDES key`;
      this.d.logger.warn(
        { event: 'media.srtp_refused', leg, answer: got },
        `the PBX did not answer the SRTP offer with one of its keys (sip.pbx.srtp: ${mode})`,
      );
      throw new SdpError(
        `the PBX answered voiceguard's SRTP offer with ${got}; it must choose one of the offered keys (sip.pbx.srtp: ${mode})`,
      );
    }
    let remote: Buffer;
    try {
      remote = parseInlineKey(c.keyParams, ours.key.suite);
    } catch (err) {
      throw new SdpError(`the PBX's SRTP answer: ${(err as Error).message}`);
    }
    const suite = ours.key.suite;
    this.d.media?.setSrtp(leg, {
      remote: { suite, keySalt: remote },
      local: { suite, keySalt: ours.key.keySalt },
    });
    if (!this.srtpOn.has(leg))
      this.d.logger.info({ event: 'media.srtp_pbx', leg, suite }, 'SRTP toward the PBX');
    this.srtpOn.add(leg);
  }

  /**
   * SRTP that voiceguard does not terminate here (media.srtp 'relay' or 'refuse', or an SRTP answer).
   * Best-effort keys were removed from the body (both ends use plain RTP). An offer that requires
   * SRTP is refused (media.srtp 'refuse': 488) or relayed as it is and never analysed: the payload is
   * ciphertext, and scoring it could drop a human caller.
   */
  private checkSrtp(from: LegName, srtp: 'none' | 'declined' | 'required'): void {
    if (srtp === 'declined') {
      this.d.logger.info(
        { event: 'media.srtp_declined', leg: from },
        'best-effort SRTP keys removed: plain RTP',
      );
      return;
    }
    if (srtp !== 'required') return;
    if (this.d.config.media.srtp === 'refuse') {
      this.d.logger.warn(
        { event: 'media.srtp_refused', leg: from },
        'SDP requires SRTP: refused (media.srtp)',
      );
      throw new SdpError(
        'the offer requires SRTP (RTP/SAVP), which voiceguard does not terminate (media.srtp: refuse)',
      );
    }
    this.stopAnalysing(
      { event: 'media.srtp_relayed', leg: from },
      'not analysed: the media is encrypted (SRTP), relayed as it is (media.srtp: relay)',
    );
  }

  /**
   * The call's audio cannot be heard (SRTP relayed encrypted, or a codec the detector cannot decode):
   * it is relayed as it is and, from now on, never analysed; once per call, the reason is logged and
   * reported as the call's detector error (the call fails open).
   */
  private stopAnalysing(fields: Record<string, unknown>, message: string): void {
    if (this.unanalysable) return;
    this.unanalysable = true;
    // A warning only where analysis was due: a call the policy lets through unanalysed (allow list,
    // analyse: false, outbound without sip.outbound.analyse) loses nothing by it.
    if (this.analyse) this.d.logger.warn(fields, message);
    else this.d.logger.info(fields, message);
    if (this.stream) {
      // A re-INVITE switched the call: stop listening before what it carries is scored or compared.
      this.stream.close();
      this.stream = null;
      this.repeatAudio = null;
      if (this.repeatTimer) clearTimeout(this.repeatTimer);
      this.repeatTimer = null;
      this.d.media?.stopFork();
    }
    if (this.analyse)
      this.d.bus.emit('call.detector_error', { callId: this.d.callId, atMs: Date.now(), message });
  }

  attach(call: B2buaCall): void {
    this.sip = call;
    call.on('progress', ({ status, hasSdp }) => {
      if (status === 183 && hasSdp) {
        this.state = 'early';
        if (this.d.config.media.forkOnEarlyMedia) this.startAnalysis();
      }
    });
    call.on('answered', () => {
      this.state = 'answered';
      this.answeredAtMs = Date.now();
      // A delayed offer: the caller's answer, in its ACK, names the codec (and may change the rule).
      if (this.awaitingAnswer) return;
      this.emitAnswered();
      this.startAnalysis();
    });
    call.on('ended', ({ reason, sipStatus }) => this.finish(reason, sipStatus));
    this.d.media?.on('rtp-timeout', () => {
      this.d.logger.info({ event: 'call.rtp_timeout' }, 'no RTP; ending call');
      this.sip?.hangup(
        'rtp-timeout',
        { a: 'SIP;cause=408;text="RTP timeout"', b: 'SIP;cause=408;text="RTP timeout"' },
        408,
      );
    });
  }

  /** call.answered, once, with the codec the call was answered in. */
  private emitAnswered(): void {
    if (this.answeredAtMs === null) return;
    this.d.bus.emit('call.answered', {
      callId: this.d.callId,
      atMs: this.answeredAtMs,
      codec: this.codec ?? 'unknown',
    });
    this.answeredAtMs = null;
  }

  /**
   * A delayed offer's answer has come: the policy is decided again with its codec. Another rule that
   * matches now (one that names codecs), or the model's bounds for that codec, replace the INVITE's
   * decision: thresholds and actions, or no analysis (analyse: false). Then what waited for the answer
   * goes on. A fault keeps the INVITE's decision.
   */
  private settleCodecRule(): void {
    this.awaitingAnswer = false;
    const decide = this.d.decideWithCodec;
    if (decide && this.codec && !this.unanalysable && !this.finished) {
      try {
        const next = decide(this.codec);
        if (next) {
          this.d.logger.info(
            {
              event: 'policy.rule_by_codec',
              codec: this.codec,
              rule: next.policy.ruleName,
              previousRule: this.policy.ruleName,
              treatment: next.treatment,
              thresholds: next.policy.thresholds,
              ...(next.policy.codecBounds ? { codecBounds: next.policy.codecBounds } : {}),
            },
            `delayed offer answered in ${this.codec}: rule ${next.policy.ruleName} applies` +
              (next.policy.codecBounds ? ` with the model's ${next.policy.codecBounds} bounds` : ''),
          );
          this.policy = next.policy;
          this.analyse = next.analyse;
          this.d.bus.emit('call.rule', {
            callId: this.d.callId,
            atMs: Date.now(),
            ruleId: next.policy.ruleId,
            treatment: next.treatment,
            codec: this.codec,
          });
        }
      } catch (err) {
        this.d.logger.warn(
          { event: 'policy.codec_rule_error', err: (err as Error).message },
          "policy not decided again with the answer's codec; the INVITE's rule stays",
        );
      }
    }
    if (this.state === 'answered') {
      this.emitAnswered();
      this.startAnalysis();
    } else if (this.state === 'early' && this.d.config.media.forkOnEarlyMedia) this.startAnalysis();
  }

  private startAnalysis(): void {
    if (
      !this.analyse ||
      this.awaitingAnswer ||
      this.unanalysable ||
      this.stream ||
      this.finished ||
      !this.d.engine ||
      !this.d.media
    )
      return;
    const t = this.policy.thresholds;
    try {
      this.stream = this.d.engine.openStream({
        streamId: this.d.callId,
        upperLlr: t.dropLlr,
        lowerLlr: t.humanLlr,
        maxListenMs: t.maxListenMs,
      });
    } catch (err) {
      this.onDetectorError((err as Error).message);
      return;
    }
    const s = this.stream;
    s.on('score', (e) => {
      this.latestLlr = e.cumulativeLlr;
      this.d.bus.emit('call.score', {
        callId: this.d.callId,
        atMs: Date.now(),
        tMs: e.tMs,
        llr: e.llr,
        cumulativeLlr: e.cumulativeLlr,
      });
      this.act(
        decideAction(this.policy, { kind: 'score', cumulativeLlr: e.cumulativeLlr }, this.taken),
        `cumulative LLR ${e.cumulativeLlr.toFixed(2)} reached warn threshold`,
      );
    });
    s.on('verdict', (e) => {
      this.verdict = e.verdict;
      this.d.logger.info(
        {
          event: 'call.verdict',
          verdict: e.verdict,
          decisionMs: e.decisionMs,
          cumulativeLlr: e.cumulativeLlr,
          codec: this.codec,
        },
        'verdict',
      );
      this.d.bus.emit('call.verdict', {
        callId: this.d.callId,
        atMs: Date.now(),
        verdict: e.verdict,
        decisionMs: e.decisionMs,
        cumulativeLlr: e.cumulativeLlr,
      });
      this.act(
        decideAction(this.policy, { kind: 'verdict', verdict: e.verdict }, this.taken),
        `verdict ${e.verdict}`,
      );
      this.stopForkIfDone();
    });
    s.on('error', (e) => this.onDetectorError(e.message));
    const retainMax = this.policy.retainAudioSeconds * 8000;
    if (this.d.repeats) {
      this.repeatAudio = new Float32Array(Math.round(this.d.repeats.listenMs * 8));
      // A recording shorter than listenMs, or a robot that stops sending RTP to wait for an answer,
      // never fills the buffer: then what came in is checked once listenMs (and some slack for
      // jitter) have passed.
      this.repeatTimer = setTimeout(() => {
        this.repeatTimer = null;
        if (!this.repeatAudio || this.finished) return;
        this.checkRepeats();
        this.stopForkIfDone();
      }, this.d.repeats.listenMs + REPEAT_SLACK_MS);
      this.repeatTimer.unref();
    }
    this.d.media.startFork((pcm) => {
      // After the verdict the fork may run on for the repeat check alone: the detector has
      // decided and hears no more (as when the fork stopped at the verdict).
      if (this.verdict === null || this.policy.retainAudioSeconds) s.push(pcm);
      if (this.repeatAudio) this.collectRepeatAudio(pcm);
      if (this.retainedSamples < retainMax) {
        const n = Math.min(pcm.length, retainMax - this.retainedSamples);
        const chunk = new Int16Array(n);
        for (let i = 0; i < n; i++)
          chunk[i] = Math.max(-32768, Math.min(32767, Math.round((pcm[i] ?? 0) * 32767)));
        this.retained.push(chunk);
        this.retainedSamples += n;
      }
    });
  }

  /** The fork carries on after the verdict only while audio is still wanted (review, repeat check). */
  private stopForkIfDone(): void {
    if (this.verdict === null || this.repeatAudio || this.policy.retainAudioSeconds) return;
    this.d.media?.stopFork();
  }

  private collectRepeatAudio(pcm: Float32Array): void {
    const buf = this.repeatAudio!;
    const n = Math.min(pcm.length, buf.length - this.repeatSamples);
    buf.set(pcm.subarray(0, n), this.repeatSamples);
    this.repeatSamples += n;
    if (this.repeatSamples >= buf.length) {
      this.checkRepeats();
      this.stopForkIfDone();
    }
  }

  /**
   * Compares the caller's audio with recent calls' and remembers it. Runs once: when listenMs of
   * audio is in, when listenMs and REPEAT_SLACK_MS have passed with less, or at the end of a shorter
   * call (then without acting: the call is over). A fault here fails open like a detector fault.
   */
  private checkRepeats(mayAct = true): void {
    const r = this.d.repeats;
    const audio = this.repeatAudio;
    this.repeatAudio = null;
    if (this.repeatTimer) clearTimeout(this.repeatTimer);
    this.repeatTimer = null;
    if (!r || !audio || this.repeatSamples < MIN_REPEAT_AUDIO_MS * 8) return;
    let matches;
    let entry: RepeatEntry;
    try {
      entry = {
        callId: this.d.callId,
        callerKey: r.callerKey,
        atMs: Date.now(),
        fingerprint: fingerprint(audio.subarray(0, this.repeatSamples)),
      };
      matches = r.index.matchAndRemember(entry);
    } catch (err) {
      this.onDetectorError(`repeat check: ${(err as Error).message}`);
      return;
    }
    try {
      r.persist?.(entry);
    } catch (err) {
      // Only the copy on disk is lost; the index in memory has the call.
      this.d.logger.error(
        { event: 'repeat.persist_error', err: (err as Error).message },
        'fingerprint not stored',
      );
    }
    if (matches.length === 0) return;
    const otherCallers = new Set(matches.filter((m) => m.callerKey !== r.callerKey).map((m) => m.callerKey))
      .size;
    const bitErrorRate = Math.min(...matches.map((m) => m.bitErrorRate));
    const first = matches[0]!;
    this.d.logger.info(
      {
        event: 'call.repeat',
        matchedCalls: matches.length,
        otherCallers,
        firstCallId: first.callId,
        bitErrorRate: Number(bitErrorRate.toFixed(3)),
      },
      'caller audio repeats earlier calls',
    );
    this.d.bus.emit('call.repeat', {
      callId: this.d.callId,
      atMs: Date.now(),
      matchedCalls: matches.length,
      otherCallers,
      firstCallId: first.callId,
      bitErrorRate,
    });
    if (mayAct && otherCallers >= r.minOtherCallers) {
      this.act(
        decideAction(this.policy, { kind: 'repeat' }, this.taken),
        `caller audio repeats ${matches.length} earlier call(s) from ${otherCallers} other caller(s)`,
        'repeat',
      );
    }
  }

  /** Fail open: the call goes on untouched; the fault is counted, logged and the policy's onError applied. */
  private onDetectorError(message: string): void {
    this.d.logger.warn({ event: 'call.detector_error', err: message }, 'detector error; call continues');
    this.d.bus.emit('call.detector_error', { callId: this.d.callId, atMs: Date.now(), message });
    this.act(decideOnDetectorError(this.policy, this.taken), `detector error: ${message}`);
  }

  private act(decision: Decision | null, why: string, cause: DropCause = 'voice'): void {
    if (!decision || this.finished) return;
    const { action, cappedFrom, again } = decision;
    if (cappedFrom) {
      // Each action the cap spared is recorded once (a log cap sees a warn at every window).
      if (this.spared.has(cappedFrom)) return;
      this.spared.add(cappedFrom);
    }
    const known = this.policy.knownCaller;
    const reason =
      cappedFrom && known
        ? `${why}; ${cappedFrom} capped at ${action}: known caller (${known.calls} earlier human call(s))`
        : why;
    this.taken.add(action);
    this.d.logger.info(
      {
        event: 'call.action',
        action,
        reason,
        ...(cappedFrom ? { cappedFrom } : {}),
        ...(again ? { again } : {}),
      },
      again ? `${cappedFrom} capped at ${action} (done already)` : `action ${action}`,
    );
    this.d.bus.emit('call.action', {
      callId: this.d.callId,
      atMs: Date.now(),
      action,
      reason,
      ...(cappedFrom ? { cappedFrom } : {}),
      ...(again ? { again } : {}),
    });
    if (again) return;
    if (action === 'warn') {
      this.d.media?.inject('b', this.d.warnAudio).catch((err: unknown) => {
        // A drop in the same breath (or the caller's BYE) closed the media first: nobody is left to
        // warn, so that is no fault worth a warning in the log.
        const level = this.finished ? 'debug' : 'warn';
        this.d.logger[level](
          { event: 'media.inject_error', err: (err as Error).message, callEnded: this.finished },
          'warn tone not injected',
        );
      });
    } else if (action === 'drop') {
      void this.drop(cause);
    }
  }

  private async drop(cause: DropCause): Promise<void> {
    if (this.d.dropAudio && this.d.media) {
      await this.d.media.inject('a', this.d.dropAudio).catch(() => undefined);
    }
    this.sip?.hangup('dropped', DROP_REASONS[cause], 603);
  }

  /** Gateway shutdown: end the call on both legs. */
  hangup(reason: string): void {
    if (this.sip)
      this.sip.hangup(
        reason,
        { a: 'SIP;cause=503;text="gateway shutting down"', b: 'SIP;cause=503;text="gateway shutting down"' },
        503,
      );
    else this.finish(reason, null);
  }

  finish(reason: string, sipStatus: number | null): void {
    if (this.finished) return;
    // A call shorter than listenMs is still compared and remembered (its actions are moot now).
    if (this.repeatAudio) this.checkRepeats(false);
    this.finished = true;
    this.state = 'ended';
    this.emitAnswered(); // a delayed offer answered whose ACK never brought the answer
    this.stream?.close();
    this.stream = null;
    if (this.retainedSamples > 0) {
      const pcm = new Int16Array(this.retainedSamples);
      let o = 0;
      for (const c of this.retained) {
        pcm.set(c, o);
        o += c.length;
      }
      this.d.bus.emit('call.audio', { callId: this.d.callId, atMs: Date.now(), sampleRateHz: 8000, pcm });
      this.retained = [];
    }
    const media = this.d.media;
    if (media) {
      media.stopFork();
      media
        .close()
        .catch((err: unknown) =>
          this.d.logger.warn(
            { event: 'media.close_error', err: (err as Error).message },
            'media close failed',
          ),
        );
    }
    this.d.logger.info({ event: 'call.ended', reason, sipStatus }, 'call ended');
    this.d.bus.emit('call.ended', { callId: this.d.callId, atMs: Date.now(), reason, sipStatus });
    this.d.onFinished();
  }
}

/** media.fallbackCodecs that can be decoded here: G.729 only where the native codec is built. */
export function g729Fallback(configured: readonly string[]): readonly string[] {
  return configured.filter((c) => c !== 'G729' || loadG729().codec !== null);
}
