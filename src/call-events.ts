import { EventEmitter } from 'node:events';
import type { PolicyAction } from './config/schema.js';
import type { KnownCaller } from './policy/known-callers.js';

/**
 * The story of every call as typed facts. The gateway is the only producer; the store
 * (persistence), the API (live view over SSE, metrics, webhooks) subscribe. Listeners must
 * never throw or block: a slow consumer queues its own work.
 */
export type CallId = string;
export type Verdict = 'synthetic' | 'human' | 'unsure';
export type CallDirection = 'inbound' | 'outbound';

export interface CallStartedEvent {
  callId: CallId;
  atMs: number;
  direction: CallDirection;
  trunk: string | null;
  sourceAddress: string;
  fromNumber: string;
  toNumber: string;
  sipCallId: string;
  ruleId: string | null;
  /** 'analyse' | 'allow' (allow-listed: never analysed) | 'deny' (rejected at INVITE) | 'bypass' (outbound/not analysed). */
  treatment: 'analyse' | 'allow' | 'deny' | 'bypass';
  /** The caller's human history capped this call's actions (policy.knownCallers). */
  knownCaller?: KnownCaller | null;
}
export interface CallAnsweredEvent {
  callId: CallId;
  atMs: number;
  codec: string;
}
/**
 * A delayed offer (INVITE without SDP) was answered in a codec that made another rule match (one that
 * names codecs): that rule applies from now on. The call's record takes its rule and treatment.
 */
export interface CallRuleEvent {
  callId: CallId;
  atMs: number;
  ruleId: string | null;
  treatment: 'analyse' | 'allow' | 'bypass';
  codec: string;
}
export interface CallScoreEvent {
  callId: CallId;
  atMs: number;
  /** Caller-audio time of the window end, ms since analysis start. */
  tMs: number;
  llr: number;
  cumulativeLlr: number;
}
export interface CallVerdictEvent {
  callId: CallId;
  atMs: number;
  verdict: Verdict;
  /** Caller-audio ms at which the decision was reached. */
  decisionMs: number | null;
  cumulativeLlr: number;
}
export interface CallActionEvent {
  callId: CallId;
  atMs: number;
  action: PolicyAction;
  reason: string;
  /** The policy named this stronger action, and the call's cap made it `action` (a known caller). */
  cappedFrom?: PolicyAction;
  /** `action` was carried out before: this event only records what the cap spared. */
  again?: true;
}
export interface CallDetectorErrorEvent {
  callId: CallId;
  atMs: number;
  message: string;
}
/** The caller's audio repeats the audio of earlier calls (a replayed recording: detect/repeat-index.ts). */
export interface CallRepeatEvent {
  callId: CallId;
  atMs: number;
  /** Earlier calls, within detector.repeat.windowMinutes, whose caller audio this call's repeats. */
  matchedCalls: number;
  /** Distinct callers among them, other than this call's caller. */
  otherCallers: number;
  /** The earliest of them. */
  firstCallId: CallId;
  /** Lowest fingerprint bit error rate among them (same recording ~0.1, different speech ~0.48). */
  bitErrorRate: number;
}
export interface CallEndedEvent {
  callId: CallId;
  atMs: number;
  /** e.g. 'bye-caller', 'bye-callee', 'cancel', 'rejected', 'dropped', 'rtp-timeout', 'session-expired', 'ack-timeout', 'max-duration', 'error', 'shutdown'. */
  reason: string;
  sipStatus: number | null;
}
/**
 * Calls erased on an admin's request (data subject erasure): whoever received their events (webhook
 * receivers, SSE clients) should forget them too (GDPR Art. 19). Only ids: never whose calls.
 */
export interface CallsErasedEvent {
  atMs: number;
  callIds: CallId[];
}
export interface CallAudioEvent {
  callId: CallId;
  atMs: number;
  sampleRateHz: number;
  /** Caller audio kept for admin review; only emitted when the call's rule opts in. */
  pcm: Int16Array;
}

export interface CallEventMap {
  'call.started': [CallStartedEvent];
  'call.answered': [CallAnsweredEvent];
  'call.rule': [CallRuleEvent];
  'call.score': [CallScoreEvent];
  'call.verdict': [CallVerdictEvent];
  'call.action': [CallActionEvent];
  'call.detector_error': [CallDetectorErrorEvent];
  'call.repeat': [CallRepeatEvent];
  'call.ended': [CallEndedEvent];
  'call.audio': [CallAudioEvent];
  'calls.erased': [CallsErasedEvent];
}

export class CallEventBus extends EventEmitter<CallEventMap> {
  constructor() {
    super({ captureRejections: false });
    this.setMaxListeners(50);
  }
}
