import { describe, expect, it } from 'vitest';
import type { PolicyAction } from '../../src/config/schema.js';
import { validateConfig } from '../../src/config/load-config.js';
import {
  capAction,
  compileSnapshot,
  decideAction,
  decideOnDetectorError,
  evaluatePolicy,
  nextAction,
  type CallPolicy,
  type DetectorEvent,
} from '../../src/policy/evaluate.js';
import {
  identifiesCaller,
  knownCaller,
  protectKnownCaller,
  type CallerHistory,
} from '../../src/policy/known-callers.js';

const cfg = validateConfig({}).policy.knownCallers;

const base: CallPolicy = evaluatePolicy(
  compileSnapshot({
    version: 1,
    timeZone: 'UTC',
    denyStatus: 603,
    defaults: {
      thresholds: { dropLlr: 8, warnLlr: 4, humanLlr: -6, maxListenMs: 10_000 },
      onSynthetic: 'drop',
      onUnsure: 'log',
      onError: 'log',
      onRepeat: 'drop',
      analyse: true,
      retainAudioSeconds: 0,
    },
    rules: [],
    allow: [],
    deny: [],
  }),
  { trunk: null, sourceAddress: '192.0.2.1', fromNumber: '+4930123', toNumber: '+4989', at: new Date(0) },
);

function history(over: Partial<CallerHistory> = {}): CallerHistory {
  return { conversations: 0, humanLabels: 0, robotLabels: 0, lastCallId: 'c-1', ...over };
}

describe('known callers: who is known', () => {
  it('defaults: on, two conversations of 60 s in 90 days, capped at warn', () => {
    expect(cfg).toEqual({
      enabled: true,
      minCalls: 2,
      minTalkSeconds: 60,
      windowDays: 90,
      capAction: 'warn',
    });
  });

  it('minCalls conversations make a caller known; fewer do not', () => {
    expect(knownCaller(history({ conversations: 1 }), cfg)).toBeNull();
    expect(knownCaller(history({ conversations: 2 }), cfg)).toEqual({
      calls: 2,
      humanLabels: 0,
      lastCallId: 'c-1',
    });
    expect(knownCaller(history({ conversations: 1 }), { ...cfg, minCalls: 1 })).not.toBeNull();
  });

  it('one call labelled human is enough; the calls count once each', () => {
    expect(knownCaller(history({ humanLabels: 1 }), cfg)).toEqual({
      calls: 1,
      humanLabels: 1,
      lastCallId: 'c-1',
    });
    expect(knownCaller(history({ conversations: 1, humanLabels: 2 }), cfg)?.calls).toBe(3);
  });

  it('a robot label ends the protection, whatever else the history holds', () => {
    expect(knownCaller(history({ conversations: 50, humanLabels: 3, robotLabels: 1 }), cfg)).toBeNull();
  });

  it('nothing is known when off, without history, or with no call that counted', () => {
    expect(knownCaller(history({ conversations: 5 }), { ...cfg, enabled: false })).toBeNull();
    expect(knownCaller(null, cfg)).toBeNull();
    expect(knownCaller(history({ lastCallId: null }), cfg)).toBeNull();
  });

  it('anonymous and withheld numbers never identify a caller', () => {
    for (const n of ['', 'anonymous', 'unknown', 'Restricted', '+49', '12'])
      expect(identifiesCaller(n), n).toBe(false);
    for (const n of ['+4930123456', '100', 'sip-0123']) expect(identifiesCaller(n), n).toBe(true);
  });

  it('protectKnownCaller caps analysed calls only, and says why', () => {
    const known = { calls: 2, humanLabels: 0, lastCallId: 'c-1' };
    expect(protectKnownCaller(base, known, 'warn')).toMatchObject({ maxAction: 'warn', knownCaller: known });
    expect(protectKnownCaller(base, null, 'warn')).toBe(base);
    const allowed: CallPolicy = { ...base, treatment: 'allow' };
    expect(protectKnownCaller(allowed, known, 'warn')).toBe(allowed);
  });
});

describe('decideAction with a cap (policy.maxAction)', () => {
  const ACTIONS: PolicyAction[] = ['drop', 'warn', 'log'];
  const EVENTS: DetectorEvent[] = [
    { kind: 'score', cumulativeLlr: 3 },
    { kind: 'score', cumulativeLlr: 5 },
    { kind: 'verdict', verdict: 'synthetic' },
    { kind: 'verdict', verdict: 'human' },
    { kind: 'verdict', verdict: 'unsure' },
    { kind: 'error' },
    { kind: 'repeat' },
  ];
  const TAKEN: PolicyAction[][] = [[], ['log'], ['warn'], ['warn', 'log'], ['drop']];

  it('capAction orders log < warn < drop', () => {
    expect(capAction('drop', 'warn')).toBe('warn');
    expect(capAction('drop', 'log')).toBe('log');
    expect(capAction('warn', 'log')).toBe('log');
    expect(capAction('log', 'warn')).toBe('log');
    expect(capAction('warn', 'warn')).toBe('warn');
    expect(capAction('drop', undefined)).toBe('drop');
  });

  it('every policy × cap × event × taken: never stronger than the cap, a spared action is named once done', () => {
    let cases = 0;
    for (const maxAction of [undefined, 'warn', 'log'] as const) {
      for (const onSynthetic of ACTIONS) {
        for (const onRepeat of ACTIONS) {
          const p: CallPolicy = { ...base, onSynthetic, onRepeat, ...(maxAction ? { maxAction } : {}) };
          const uncapped: CallPolicy = { ...base, onSynthetic, onRepeat };
          for (const e of EVENTS) {
            for (const t of TAKEN) {
              const taken = new Set(t);
              const d = decideAction(p, e, taken);
              const where = JSON.stringify({ maxAction, onSynthetic, onRepeat, e, t });
              // What the policy names without a cap, ignoring what was taken.
              const named =
                decideAction(uncapped, e, new Set(taken.has('drop') ? ['drop'] : []))?.action ?? null;
              if (named === null) {
                expect(d, where).toBeNull();
              } else if (capAction(named, maxAction) === named) {
                // Nothing to cap: exactly the uncapped decision.
                expect(d, where).toEqual(decideAction(uncapped, e, taken));
              } else {
                const action = capAction(named, maxAction);
                expect(d, where).toEqual(
                  taken.has(action)
                    ? { action, cappedFrom: named, again: true }
                    : { action, cappedFrom: named },
                );
                // nextAction reports only new actions.
                expect(nextAction(p, e, taken), where).toBe(taken.has(action) ? null : action);
              }
              if (d && maxAction) expect(capAction(d.action, maxAction), where).toBe(d.action);
              cases++;
            }
          }
        }
      }
    }
    expect(cases).toBe(3 * 9 * EVENTS.length * TAKEN.length);
  });

  it('key cases, spelled out', () => {
    const known: CallPolicy = { ...base, maxAction: 'warn' };
    // the warn at warnLlr, then the synthetic verdict: the drop becomes a record of what was spared
    expect(decideAction(known, { kind: 'score', cumulativeLlr: 5 }, new Set())).toEqual({ action: 'warn' });
    expect(decideAction(known, { kind: 'verdict', verdict: 'synthetic' }, new Set(['warn']))).toEqual({
      action: 'warn',
      cappedFrom: 'drop',
      again: true,
    });
    // a verdict before any warn: the warn is carried out instead of the drop
    expect(decideAction(known, { kind: 'verdict', verdict: 'synthetic' }, new Set())).toEqual({
      action: 'warn',
      cappedFrom: 'drop',
    });
    expect(decideAction(known, { kind: 'repeat' }, new Set())).toEqual({
      action: 'warn',
      cappedFrom: 'drop',
    });
    // a log cap: the warn tone is spared too
    const quiet: CallPolicy = { ...base, maxAction: 'log' };
    expect(decideAction(quiet, { kind: 'score', cumulativeLlr: 5 }, new Set())).toEqual({
      action: 'log',
      cappedFrom: 'warn',
    });
    // a detector fault never drops, and never warns where it would have dropped: log, capped or not
    const dropOnError: CallPolicy = { ...base, onError: 'drop' };
    expect(decideOnDetectorError(dropOnError, new Set())).toEqual({ action: 'log' });
    expect(decideOnDetectorError({ ...dropOnError, maxAction: 'warn' }, new Set())).toEqual({
      action: 'log',
    });
    expect(decideOnDetectorError({ ...dropOnError, maxAction: 'warn' }, new Set(['log']))).toBeNull();
    expect(decideOnDetectorError({ ...base, onError: 'warn' }, new Set())).toEqual({ action: 'warn' });
    expect(decideOnDetectorError({ ...base, onError: 'warn', maxAction: 'log' }, new Set())).toEqual({
      action: 'log',
      cappedFrom: 'warn',
    });
    // human verdicts and scores below warn name nothing, capped or not
    expect(decideAction(known, { kind: 'verdict', verdict: 'human' }, new Set())).toBeNull();
    expect(decideAction(known, { kind: 'score', cumulativeLlr: 3 }, new Set())).toBeNull();
  });
});
