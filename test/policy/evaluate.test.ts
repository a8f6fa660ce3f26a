import { describe, expect, it } from 'vitest';
import type { PolicyAction } from '../../src/config/schema.js';
import {
  compileSnapshot,
  evaluatePolicy,
  nextAction,
  resolveDefaults,
  validateRule,
  type CallFacts,
  type CallPolicy,
  type DetectorEvent,
} from '../../src/policy/evaluate.js';
import {
  PolicyValidationError,
  type ListEntry,
  type PolicyDefaults,
  type PolicyRule,
} from '../../src/policy/policy-types.js';

const defaults: PolicyDefaults = {
  thresholds: { dropLlr: 8, warnLlr: 4, humanLlr: -6, maxListenMs: 10_000 },
  onSynthetic: 'warn',
  onUnsure: 'log',
  onError: 'log',
  onRepeat: 'warn',
  analyse: true,
  retainAudioSeconds: 0,
};

function rule(id: string, priority: number, extra: Partial<PolicyRule> = {}): PolicyRule {
  return {
    id,
    name: `rule ${id}`,
    priority,
    enabled: true,
    match: {},
    thresholds: {},
    updatedAtMs: 0,
    ...extra,
  };
}

function entry(kind: 'allow' | 'deny', pattern: string, sipStatus: number | null = null): ListEntry {
  return { id: `${kind}-${pattern}`, kind, pattern, sipStatus, note: '', createdAtMs: 0, createdBy: 't' };
}

function snap(
  rules: PolicyRule[] = [],
  allow: ListEntry[] = [],
  deny: ListEntry[] = [],
  timeZone = 'UTC',
  d = defaults,
) {
  return compileSnapshot({ version: 1, timeZone, denyStatus: 603, defaults: d, rules, allow, deny });
}

const facts = (o: Partial<CallFacts> = {}): CallFacts => ({
  trunk: 'carrier-a',
  sourceAddress: '192.0.2.10',
  fromNumber: '+4930111222',
  toNumber: '+4989333444',
  at: new Date('2026-11-30T10:00:00Z'), // Monday 10:00 UTC
  ...o,
});

describe('evaluatePolicy: lists', () => {
  it('uses the defaults when nothing matches', () => {
    const p = evaluatePolicy(snap(), facts());
    expect(p).toEqual({
      treatment: 'analyse',
      denyStatus: null,
      ruleId: null,
      ruleName: 'defaults',
      thresholds: defaults.thresholds,
      onSynthetic: 'warn',
      onUnsure: 'log',
      onError: 'log',
      onRepeat: 'warn',
      retainAudioSeconds: 0,
    });
  });

  it("a rule's onRepeat overrides the default's, and a rule without one inherits it", () => {
    const withRepeat = rule('r1', 1, { onRepeat: 'drop' });
    expect(evaluatePolicy(snap([withRepeat]), facts()).onRepeat).toBe('drop');
    expect(evaluatePolicy(snap([rule('r2', 1)]), facts()).onRepeat).toBe('warn');
  });

  it('denies with the configured status, or the entry status', () => {
    expect(evaluatePolicy(snap([], [], [entry('deny', '+4930*')]), facts())).toMatchObject({
      treatment: 'deny',
      denyStatus: 603,
    });
    expect(evaluatePolicy(snap([], [], [entry('deny', '+4930*', 486)]), facts())).toMatchObject({
      treatment: 'deny',
      denyStatus: 486,
    });
  });

  it('allows without analysis', () => {
    const p = evaluatePolicy(
      snap([rule('r', 1, { onSynthetic: 'drop' })], [entry('allow', '+4930111222')]),
      facts(),
    );
    expect(p).toMatchObject({
      treatment: 'allow',
      ruleId: null,
      ruleName: 'allow list: +4930111222',
      retainAudioSeconds: 0,
    });
  });

  it('precedence: deny > allow > rules', () => {
    const all = snap([rule('r', 1)], [entry('allow', '+4930*')], [entry('deny', '+4930111222')]);
    expect(evaluatePolicy(all, facts()).treatment).toBe('deny');
    expect(evaluatePolicy(all, facts({ fromNumber: '+4930999' })).treatment).toBe('allow');
    expect(evaluatePolicy(all, facts({ fromNumber: '+4940999' })).ruleId).toBe('r');
  });

  it("matches p: entries and rules against the caller's pseudonym, and names the deciding entry", () => {
    const pseudonym = 'p:0123456789abcdef';
    const s = snap(
      [rule('r', 1, { match: { fromNumbers: [pseudonym] }, onSynthetic: 'drop' })],
      [entry('allow', pseudonym)],
    );
    expect(evaluatePolicy(s, facts({ fromPseudonym: pseudonym }))).toMatchObject({
      treatment: 'allow',
      listEntryId: `allow-${pseudonym}`,
    });
    // Without the pseudonym (or another one), the entry does not match the clear number.
    expect(evaluatePolicy(s, facts()).treatment).toBe('analyse');
    expect(evaluatePolicy(s, facts({ fromPseudonym: 'p:ffffffffffffffff' })).treatment).toBe('analyse');
    const rulesOnly = snap([rule('r', 1, { match: { fromNumbers: [pseudonym] } })]);
    expect(evaluatePolicy(rulesOnly, facts({ fromPseudonym: pseudonym })).ruleId).toBe('r');
    expect(evaluatePolicy(rulesOnly, facts()).ruleId).toBe(null);
  });

  it('matches lists against the normalised calling number', () => {
    const s = snap([], [], [entry('deny', '+4930111222')]);
    expect(evaluatePolicy(s, facts({ fromNumber: 'sip:+49 30 111-222@carrier' })).treatment).toBe('deny');
  });
});

describe('evaluatePolicy: rules', () => {
  it('takes the first matching rule by priority, then id', () => {
    const s = snap([
      rule('b', 5, { onSynthetic: 'log' }),
      rule('a', 5, { onSynthetic: 'drop' }),
      rule('c', 9),
    ]);
    expect(evaluatePolicy(s, facts()).ruleId).toBe('a');
  });

  it('skips disabled rules', () => {
    const s = snap([rule('off', 1, { enabled: false }), rule('on', 2)]);
    expect(evaluatePolicy(s, facts()).ruleId).toBe('on');
  });

  it.each([
    [{ trunks: ['carrier-a'] }, {}, true],
    [{ trunks: ['carrier-b'] }, {}, false],
    [{ trunks: ['carrier-a'] }, { trunk: null }, false],
    [{ sourceAddresses: ['192.0.2.0/24'] }, {}, true],
    [{ sourceAddresses: ['198.51.100.0/24', '192.0.2.10'] }, {}, true],
    [{ sourceAddresses: ['198.51.100.0/24'] }, {}, false],
    [{ sourceAddresses: ['192.0.2.0/24'] }, { sourceAddress: '::ffff:192.0.2.7' }, true],
    [{ sourceAddresses: ['2001:db8::/32'] }, { sourceAddress: '2001:db8::5' }, true],
    [{ sourceAddresses: ['2001:db8::/32'] }, { sourceAddress: 'not-an-ip' }, false],
    [{ toNumbers: ['+4989*'] }, {}, true],
    [{ toNumbers: ['+4940*', '_+4989X.'] }, {}, true],
    [{ toNumbers: ['+4940*'] }, {}, false],
    [{ fromNumbers: ['+4930*'] }, {}, true],
    [{ fromNumbers: ['+4930*'] }, { fromNumber: '+4931' }, false],
    [{ trunks: ['carrier-a'], toNumbers: ['+4940*'] }, {}, false],
    [{ schedule: [{ days: ['mon'], start: '09:00', end: '17:00' }] }, {}, true],
    [{ schedule: [{ days: ['tue'], start: '09:00', end: '17:00' }] }, {}, false],
    [{ codecs: ['g729'] }, { codec: 'g729' }, true],
    [{ codecs: ['pcmu', 'pcma'] }, { codec: 'g729' }, false],
    [{ codecs: ['g729'] }, { codec: null }, false],
    [{ codecs: ['g729'] }, {}, false],
    [{ codecs: ['pcma'], trunks: ['carrier-a'] }, { codec: 'pcma' }, true],
    [
      {
        schedule: [
          { days: ['tue'], start: '09:00', end: '17:00' },
          { days: ['mon'], start: '00:00', end: '00:00' },
        ],
      },
      {},
      true,
    ],
  ] as [PolicyRule['match'], Partial<CallFacts>, boolean][])('match %j with %j → %s', (match, f, want) => {
    const s = snap([rule('r', 1, { match })]);
    expect(evaluatePolicy(s, facts(f)).ruleId === 'r').toBe(want);
  });

  it('reads schedules in the policy time zone', () => {
    // Monday 23:30 UTC is Tuesday 00:30 in Berlin.
    const r = rule('tue', 1, { match: { schedule: [{ days: ['tue'], start: '00:00', end: '01:00' }] } });
    const at = new Date('2026-11-30T23:30:00Z');
    expect(evaluatePolicy(snap([r], [], [], 'Europe/Berlin'), facts({ at })).ruleId).toBe('tue');
    expect(evaluatePolicy(snap([r], [], [], 'UTC'), facts({ at })).ruleId).toBeNull();
  });

  it('inherits missing thresholds and actions from the defaults', () => {
    const s = snap([rule('r', 1, { thresholds: { dropLlr: 12 }, onUnsure: 'warn', retainAudioSeconds: 10 })]);
    expect(evaluatePolicy(s, facts())).toMatchObject({
      thresholds: { dropLlr: 12, warnLlr: 4, humanLlr: -6, maxListenMs: 10_000 },
      onSynthetic: 'warn',
      onUnsure: 'warn',
      onError: 'log',
      retainAudioSeconds: 10,
    });
  });

  it('a rule with analyse: false allows the call and keeps no audio', () => {
    const s = snap([rule('r', 1, { analyse: false, retainAudioSeconds: 10 })]);
    expect(evaluatePolicy(s, facts())).toMatchObject({
      treatment: 'allow',
      ruleId: 'r',
      retainAudioSeconds: 0,
    });
  });

  it('defaults with analyse: false allow unmatched calls', () => {
    const s = snap([], [], [], 'UTC', { ...defaults, analyse: false });
    expect(evaluatePolicy(s, facts()).treatment).toBe('allow');
  });

  it('returns a copy: mutating a CallPolicy never changes the snapshot', () => {
    const s = snap([rule('r', 1)]);
    const p = evaluatePolicy(s, facts());
    p.thresholds.dropLlr = 99;
    expect(evaluatePolicy(s, facts()).thresholds.dropLlr).toBe(8);
  });

  it('rejects an unknown time zone', () => {
    expect(() => snap([], [], [], 'Mars/Olympus')).toThrow(/unknown IANA time zone/);
  });
});

describe("evaluatePolicy: a codec's own bounds (PolicyDefaults.byCodec)", () => {
  const g729 = { dropLlr: 12, warnLlr: 6, humanLlr: -12, maxListenMs: 10_000 };
  const withCodec: PolicyDefaults = { ...defaults, byCodec: { g729 } };

  it('the defaults of a call heard in that codec are its bounds, and say so; other codecs keep the generic ones', () => {
    const s = snap([], [], [], 'UTC', withCodec);
    expect(evaluatePolicy(s, facts({ codec: 'g729' }))).toMatchObject({
      thresholds: g729,
      codecBounds: 'g729',
    });
    const pcmu = evaluatePolicy(s, facts({ codec: 'pcmu' }));
    expect(pcmu.thresholds).toEqual(defaults.thresholds);
    expect(pcmu.codecBounds).toBeUndefined();
    expect(evaluatePolicy(s, facts({ codec: null })).codecBounds).toBeUndefined();
  });

  it("a rule's own thresholds win; the ones it leaves out come from the codec's bounds if they stay in order", () => {
    const s = snap(
      [
        rule('drop-only', 1, { match: { trunks: ['a'] }, thresholds: { dropLlr: 20 } }),
        rule('all-three', 2, {
          match: { trunks: ['b'] },
          thresholds: { dropLlr: 9, warnLlr: 5, humanLlr: -9 },
        }),
        rule('low-drop', 3, { match: { trunks: ['c'] }, thresholds: { dropLlr: 5 } }),
        rule('pass', 4, { match: { trunks: ['d'] }, analyse: false }),
      ],
      [],
      [],
      'UTC',
      withCodec,
    );
    expect(evaluatePolicy(s, facts({ trunk: 'a', codec: 'g729' }))).toMatchObject({
      thresholds: { dropLlr: 20, warnLlr: 6, humanLlr: -12 },
      codecBounds: 'g729',
    });
    const all = evaluatePolicy(s, facts({ trunk: 'b', codec: 'g729' }));
    expect(all.thresholds).toMatchObject({ dropLlr: 9, warnLlr: 5, humanLlr: -9 });
    expect(all.codecBounds).toBeUndefined();
    // warn 6 above the rule's drop 5: the rule keeps the generic warn 4 (valid as the rule was validated).
    const low = evaluatePolicy(s, facts({ trunk: 'c', codec: 'g729' }));
    expect(low.thresholds).toMatchObject({ dropLlr: 5, warnLlr: 4, humanLlr: -6 });
    expect(low.codecBounds).toBeUndefined();
    expect(evaluatePolicy(s, facts({ trunk: 'd', codec: 'g729' })).codecBounds).toBeUndefined();
  });
});

describe('nextAction', () => {
  const ACTIONS: PolicyAction[] = ['drop', 'warn', 'log'];
  const EVENTS: [string, DetectorEvent][] = [
    ['score below warn', { kind: 'score', cumulativeLlr: 3.99 }],
    ['score at warn', { kind: 'score', cumulativeLlr: 4 }],
    ['score above drop', { kind: 'score', cumulativeLlr: 9 }],
    ['score NaN', { kind: 'score', cumulativeLlr: NaN }],
    ['synthetic', { kind: 'verdict', verdict: 'synthetic' }],
    ['human', { kind: 'verdict', verdict: 'human' }],
    ['unsure', { kind: 'verdict', verdict: 'unsure' }],
    ['error', { kind: 'error' }],
    ['repeat', { kind: 'repeat' }],
  ];
  const TAKEN: PolicyAction[][] = [
    [],
    ['log'],
    ['warn'],
    ['drop'],
    ['warn', 'log'],
    ['warn', 'drop'],
    ['log', 'drop'],
    ['warn', 'log', 'drop'],
  ];

  /** The contract in docs/interfaces.md, restated case by case. */
  function expected(p: CallPolicy, e: DetectorEvent, taken: Set<PolicyAction>): PolicyAction | null {
    if (p.treatment !== 'analyse') return null; // not analysed: never acts
    if (taken.has('drop')) return null; // the call is gone
    let wanted: PolicyAction | null = null;
    if (e.kind === 'score') {
      const reachedWarn = e.cumulativeLlr >= p.thresholds.warnLlr;
      wanted = reachedWarn && (p.onSynthetic === 'warn' || p.onSynthetic === 'drop') ? 'warn' : null;
    } else if (e.kind === 'verdict' && e.verdict === 'synthetic') wanted = p.onSynthetic;
    else if (e.kind === 'verdict' && e.verdict === 'unsure') wanted = p.onUnsure;
    else if (e.kind === 'error') wanted = p.onError;
    else if (e.kind === 'repeat') wanted = p.onRepeat;
    return wanted !== null && taken.has(wanted) ? null : wanted;
  }

  const base = evaluatePolicy(snap(), facts());
  let combos = 0;
  for (const treatment of ['analyse', 'allow', 'deny'] as const) {
    for (const onSynthetic of ACTIONS) {
      for (const onUnsure of ACTIONS) {
        for (const onError of ACTIONS) {
          it(`${treatment} synthetic=${onSynthetic} unsure=${onUnsure} error=${onError}: all repeat actions × events × taken`, () => {
            for (const onRepeat of ACTIONS) {
              const p: CallPolicy = { ...base, treatment, onSynthetic, onUnsure, onError, onRepeat };
              for (const [, e] of EVENTS) {
                for (const t of TAKEN) {
                  const taken = new Set(t);
                  expect(nextAction(p, e, taken), JSON.stringify({ e, t, onRepeat })).toBe(
                    expected(p, e, taken),
                  );
                  combos++;
                }
              }
            }
          });
        }
      }
    }
  }
  it('covered every combination', () => expect(combos).toBe(3 * 81 * EVENTS.length * TAKEN.length));

  it('key cases, spelled out', () => {
    const drop: CallPolicy = { ...base, onSynthetic: 'drop' };
    expect(nextAction(drop, { kind: 'score', cumulativeLlr: 5 }, new Set())).toBe('warn');
    expect(nextAction(drop, { kind: 'score', cumulativeLlr: 5 }, new Set(['warn']))).toBeNull();
    expect(nextAction(drop, { kind: 'verdict', verdict: 'synthetic' }, new Set(['warn']))).toBe('drop');
    expect(nextAction(drop, { kind: 'verdict', verdict: 'human' }, new Set())).toBeNull();
    const logOnly: CallPolicy = { ...base, onSynthetic: 'log' };
    expect(nextAction(logOnly, { kind: 'score', cumulativeLlr: 100 }, new Set())).toBeNull();
    expect(nextAction(logOnly, { kind: 'verdict', verdict: 'synthetic' }, new Set())).toBe('log');
    // fail open by default
    expect(nextAction(base, { kind: 'error' }, new Set())).toBe('log');
    // a repeat acts on its own action, also when the voice was judged human
    const repeatDrop: CallPolicy = { ...base, onRepeat: 'drop' };
    expect(nextAction(repeatDrop, { kind: 'repeat' }, new Set(['log']))).toBe('drop');
    expect(nextAction(repeatDrop, { kind: 'repeat' }, new Set(['drop']))).toBeNull();
  });
});

describe('resolveDefaults and validateRule', () => {
  const cfg = {
    onSynthetic: 'warn' as const,
    onUnsure: 'log' as const,
    onError: 'log' as const,
    onRepeat: 'warn' as const,
    analyse: true,
    retainAudioSeconds: 0,
  };
  const model = { dropLlr: 8, warnLlr: 4, humanLlr: -6, maxListenMs: 10_000 };

  it('layers model ← config ← override', () => {
    const d = resolveDefaults(model, { ...cfg, dropLlr: 10 }, { warnLlr: 5, onError: 'drop' });
    expect(d.thresholds).toEqual({ dropLlr: 10, warnLlr: 5, humanLlr: -6, maxListenMs: 10_000 });
    expect(d.onError).toBe('drop');
  });

  it("a codec's own model bounds replace the model's generic ones, under the admin's values", () => {
    const byCodec = { g729: { dropLlr: 12, warnLlr: 6, humanLlr: -12 } };
    expect(resolveDefaults({ ...model, byCodec }, cfg, null).byCodec).toEqual({
      g729: { dropLlr: 12, warnLlr: 6, humanLlr: -12, maxListenMs: 10_000 },
    });
    // The config sets dropLlr, the stored override humanLlr: those hold for every codec.
    const d = resolveDefaults({ ...model, byCodec }, { ...cfg, dropLlr: 14 }, { humanLlr: -9 });
    expect(d.thresholds).toEqual({ dropLlr: 14, warnLlr: 4, humanLlr: -9, maxListenMs: 10_000 });
    expect(d.byCodec).toEqual({ g729: { dropLlr: 14, warnLlr: 6, humanLlr: -9, maxListenMs: 10_000 } });
    // Out of order under the admin's values (warn 6 above their drop 5): that codec keeps the generic ones.
    expect(resolveDefaults({ ...model, byCodec }, { ...cfg, dropLlr: 5 }, null).byCodec).toBeUndefined();
    expect(resolveDefaults(model, cfg, null).byCodec).toBeUndefined();
  });

  it('names thresholds missing everywhere', () => {
    try {
      resolveDefaults(null, { ...cfg, dropLlr: 8 }, null);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyValidationError);
      expect((err as PolicyValidationError).issues.map((i) => i.field)).toEqual([
        'policy.defaults.warnLlr',
        'policy.defaults.humanLlr',
        'policy.defaults.maxListenMs',
      ]);
    }
  });

  it('rejects out-of-order defaults', () => {
    expect(() => resolveDefaults(model, cfg, { humanLlr: 4 })).toThrow(
      /humanLlr \(4\) must be < warnLlr \(4\)/,
    );
  });

  it.each([
    [{ name: 'x', thresholds: { warnLlr: 9 } }, 'thresholds.warnLlr', 'must be <= dropLlr'],
    [{ name: 'x', thresholds: { dropLlr: 3 } }, 'thresholds.warnLlr', 'must be <= dropLlr (3)'],
    [{ name: 'x', thresholds: { humanLlr: 4 } }, 'thresholds.humanLlr', 'must be < warnLlr'],
    [{ name: 'x', thresholds: { maxListenMs: 100 } }, 'thresholds.maxListenMs', ''],
    [{ name: 'x', onSynthetic: 'nuke' }, 'onSynthetic', 'allowed values: "drop", "warn", "log"'],
    [{ name: 'x', match: { toNumbers: ['+49?'] } }, 'match.toNumbers.0', 'invalid number pattern'],
    [
      { name: 'x', match: { sourceAddresses: ['10.0.0.0/33'] } },
      'match.sourceAddresses.0',
      'invalid source address',
    ],
    [
      { name: 'x', match: { schedule: [{ days: ['mon'], start: '25:00', end: '06:00' }] } },
      'match.schedule.0.start',
      'HH:MM',
    ],
    [
      { name: 'x', match: { schedule: [{ days: ['monday'], start: '20:00', end: '06:00' }] } },
      'match.schedule.0.days.0',
      'allowed values',
    ],
    [{ name: 'x', color: 'red' }, 'color', "unknown key(s) 'color'"],
    [{ thresholds: {} }, 'name', ''],
    [{ name: 'x', id: 'bad id!' }, 'id', 'letters, digits'],
  ])('%j → %s', (input, field, fragment) => {
    try {
      validateRule(input, defaults, 'gen', 0);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyValidationError);
      const e = err as PolicyValidationError;
      expect(e.field).toBe(field);
      expect(e.message).toContain(fragment);
    }
  });

  it('normalises a valid rule, filling priority and enabled', () => {
    const r = validateRule({ name: 'night', onSynthetic: 'drop' }, defaults, 'gen-1', 42);
    expect(r).toEqual({
      id: 'gen-1',
      name: 'night',
      priority: 100,
      enabled: true,
      match: {},
      thresholds: {},
      onSynthetic: 'drop',
      updatedAtMs: 42,
    });
  });
});
