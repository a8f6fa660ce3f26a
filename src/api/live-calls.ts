import type { CallEventBus, CallRuleEvent, CallStartedEvent, Verdict } from '../call-events.js';
import type { PolicyAction } from '../config/schema.js';

/** A call in progress as the live view shows it. */
export interface LiveCall {
  id: string;
  direction: CallStartedEvent['direction'];
  trunk: string | null;
  fromNumber: string;
  toNumber: string;
  ruleId: string | null;
  treatment: CallStartedEvent['treatment'];
  startedAtMs: number;
  answeredAtMs: number | null;
  codec: string | null;
  cumulativeLlr: number | null;
  lastScoreTMs: number | null;
  /** The most recent scores (tMs, cumulativeLlr), newest last, at most RECENT_SCORES. */
  recentScores: { tMs: number; cumulativeLlr: number }[];
  verdict: Verdict | null;
  actions: PolicyAction[];
  /** The caller is known (policy.knownCallers): no action on the call is stronger than capAction. */
  knownCaller: boolean;
}

export interface LiveCallSource {
  list(): LiveCall[];
  /** Trunk registrations with carriers (sip.trunks[].register), where the gateway has any. */
  registrations?(): TrunkRegistration[];
}

export interface TrunkRegistration {
  trunk: string;
  state: 'registering' | 'registered' | 'failed' | 'stopped';
  /** When the binding runs out (ms epoch), while registered. */
  expiresAtMs: number | null;
}

const RECENT_SCORES = 120;

/**
 * The live registry built from the bus alone: the API uses it when the gateway does not hand
 * its own `live` source to createApiServer.
 */
export class BusLiveCalls implements LiveCallSource {
  private readonly calls = new Map<string, LiveCall>();
  private readonly off: () => void;

  constructor(
    bus: CallEventBus,
    private readonly hideNumbers: ((n: string) => string) | null = null,
  ) {
    const started = (e: CallStartedEvent) => {
      if (e.treatment === 'deny') return;
      const hide = this.hideNumbers ?? ((n: string) => n);
      this.calls.set(e.callId, {
        id: e.callId,
        direction: e.direction,
        trunk: e.trunk,
        fromNumber: hide(e.fromNumber),
        toNumber: hide(e.toNumber),
        ruleId: e.ruleId,
        treatment: e.treatment,
        startedAtMs: e.atMs,
        answeredAtMs: null,
        codec: null,
        cumulativeLlr: null,
        lastScoreTMs: null,
        recentScores: [],
        verdict: null,
        actions: [],
        knownCaller: !!e.knownCaller,
      });
    };
    const answered = (e: { callId: string; atMs: number; codec: string }) => {
      const c = this.calls.get(e.callId);
      if (c) Object.assign(c, { answeredAtMs: e.atMs, codec: e.codec });
    };
    const rule = (e: CallRuleEvent) => {
      const c = this.calls.get(e.callId);
      if (c) Object.assign(c, { ruleId: e.ruleId, treatment: e.treatment });
    };
    const score = (e: { callId: string; tMs: number; cumulativeLlr: number }) => {
      const c = this.calls.get(e.callId);
      if (!c) return;
      c.cumulativeLlr = e.cumulativeLlr;
      c.lastScoreTMs = e.tMs;
      c.recentScores.push({ tMs: e.tMs, cumulativeLlr: e.cumulativeLlr });
      if (c.recentScores.length > RECENT_SCORES) c.recentScores.shift();
    };
    const verdict = (e: { callId: string; verdict: Verdict }) => {
      const c = this.calls.get(e.callId);
      if (c) c.verdict = e.verdict;
    };
    const action = (e: { callId: string; action: PolicyAction }) => {
      const c = this.calls.get(e.callId);
      if (c && !c.actions.includes(e.action)) c.actions.push(e.action);
    };
    const ended = (e: { callId: string }) => this.calls.delete(e.callId);
    bus.on('call.started', started);
    bus.on('call.answered', answered);
    bus.on('call.rule', rule);
    bus.on('call.score', score);
    bus.on('call.verdict', verdict);
    bus.on('call.action', action);
    bus.on('call.ended', ended);
    this.off = () => {
      bus.off('call.started', started);
      bus.off('call.answered', answered);
      bus.off('call.rule', rule);
      bus.off('call.score', score);
      bus.off('call.verdict', verdict);
      bus.off('call.action', action);
      bus.off('call.ended', ended);
    };
  }

  list(): LiveCall[] {
    return [...this.calls.values()].sort((a, b) => a.startedAtMs - b.startedAtMs);
  }

  close(): void {
    this.off();
    this.calls.clear();
  }
}
