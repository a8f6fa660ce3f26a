import type { Verdict } from '../call-events.js';
import { compileAddressList, type AddressMatcher } from './address-match.js';
import { compileNumberPattern, normaliseNumber, type NumberMatcher } from './number-pattern.js';
import {
  checkThresholds,
  DefaultsInputSchema,
  PolicyValidationError,
  RuleInputSchema,
  zodIssues,
  type DefaultsOverride,
  type ListEntry,
  type PolicyAction,
  type PolicyDefaults,
  type PolicyIssue,
  type PolicyRule,
  type Thresholds,
} from './policy-types.js';
import type { KnownCaller } from './known-callers.js';
import { compileRange, isValidTimeZone, localTime, rangeMatches, type CompiledRange } from './schedule.js';

/**
 * The policy evaluator: pure functions from (snapshot, call facts) to the call's policy, and
 * from (policy, detector event, actions taken) to the next action.
 *
 * Precedence: deny list > allow list > rules (by priority, first match) > defaults.
 * Deny wins over allow because a deny entry is an explicit decision about a known-bad caller,
 * and a broad allow prefix must not re-admit it.
 */
export interface CallFacts {
  trunk: string | null;
  sourceAddress: string;
  fromNumber: string;
  /** The store's keyed pseudonym of fromNumber, matched by `p:` list and rule patterns. */
  fromPseudonym?: string;
  toNumber: string;
  at: Date;
  /**
   * The codec the caller's audio will be analysed in, read from the INVITE's SDP offer ('pcmu',
   * 'pcma', 'g729'); null or absent when the INVITE has no SDP or no codec the detector decodes. For
   * an INVITE without SDP, the gateway evaluates again with the codec of the caller's answer.
   */
  codec?: string | null;
}

export interface CallPolicy {
  treatment: 'analyse' | 'allow' | 'deny';
  denyStatus: number | null;
  ruleId: string | null;
  ruleName: string;
  /** The allow/deny list entry that decided, if one did (logs name it instead of its pattern). */
  listEntryId?: string;
  thresholds: Thresholds;
  onSynthetic: PolicyAction;
  onUnsure: PolicyAction;
  onError: PolicyAction;
  onRepeat: PolicyAction;
  retainAudioSeconds: number;
  /**
   * The most any action on this call may be (a drop, or a warn, becomes it); unset = no cap. Set for
   * known callers (policy.knownCallers, see known-callers.ts), whose history says they are human.
   */
  maxAction?: PolicyAction;
  /** What made the caller known, when maxAction comes from their history. */
  knownCaller?: KnownCaller;
  /**
   * The codec whose own model bounds the thresholds come from (PolicyDefaults.byCodec), where neither
   * the rule nor the admin set them; unset = the generic ones.
   */
  codecBounds?: string;
}

export type DetectorEvent =
  | { kind: 'score'; cumulativeLlr: number }
  | { kind: 'verdict'; verdict: Verdict }
  | { kind: 'error' }
  /** The caller's audio repeats recent calls of other callers (detect/repeat-index.ts). */
  | { kind: 'repeat' };

interface CompiledRule {
  rule: PolicyRule;
  trunks: Set<string> | null;
  source: AddressMatcher | null;
  to: NumberMatcher[] | null;
  from: NumberMatcher[] | null;
  schedule: CompiledRange[] | null;
  codecs: Set<string> | null;
  policy: CallPolicy;
}

interface CompiledListEntry {
  entry: ListEntry;
  matches: NumberMatcher;
}

export interface PolicySnapshot {
  /** Increases on every reload; live calls keep the CallPolicy of the snapshot they started under. */
  readonly version: number;
  readonly timeZone: string;
  readonly denyStatus: number;
  readonly defaults: PolicyDefaults;
  readonly rules: readonly PolicyRule[];
  readonly allow: readonly ListEntry[];
  readonly deny: readonly ListEntry[];
  readonly compiled: {
    readonly rules: readonly CompiledRule[];
    readonly allow: readonly CompiledListEntry[];
    readonly deny: readonly CompiledListEntry[];
  };
}

export interface SnapshotInput {
  version: number;
  timeZone: string;
  denyStatus: number;
  defaults: PolicyDefaults;
  rules: PolicyRule[];
  allow: ListEntry[];
  deny: ListEntry[];
}

/** Merges threshold/action sources, later ones winning: model metadata, config, stored override. */
export function resolveDefaults(
  model: (Partial<Thresholds> & { byCodec?: Record<string, Partial<Thresholds>> }) | null,
  config: DefaultsOverride & {
    onSynthetic: PolicyAction;
    onUnsure: PolicyAction;
    onError: PolicyAction;
    onRepeat: PolicyAction;
    analyse: boolean;
    retainAudioSeconds: number;
  },
  override: DefaultsOverride | null,
): PolicyDefaults {
  // The model layer is `m`: its generic bounds, or (below) its bounds for one codec over them.
  const pickFrom =
    (m: Partial<Thresholds> | null | undefined) =>
    <K extends keyof Thresholds>(k: K): number | undefined =>
      override?.[k] ?? config[k] ?? m?.[k];
  const pick = pickFrom(model);
  const missing = (['dropLlr', 'warnLlr', 'humanLlr', 'maxListenMs'] as const).filter(
    (k) => pick(k) === undefined,
  );
  if (missing.length) {
    throw new PolicyValidationError(
      missing.map((k) => ({
        field: `policy.defaults.${k}`,
        message: 'not set in the config, the stored defaults or the model metadata decision block',
      })),
    );
  }
  const defaults: PolicyDefaults = {
    thresholds: {
      dropLlr: pick('dropLlr')!,
      warnLlr: pick('warnLlr')!,
      humanLlr: pick('humanLlr')!,
      maxListenMs: pick('maxListenMs')!,
    },
    onSynthetic: override?.onSynthetic ?? config.onSynthetic,
    onUnsure: override?.onUnsure ?? config.onUnsure,
    onError: override?.onError ?? config.onError,
    onRepeat: override?.onRepeat ?? config.onRepeat,
    analyse: override?.analyse ?? config.analyse,
    retainAudioSeconds: override?.retainAudioSeconds ?? config.retainAudioSeconds,
  };
  const issues = checkThresholds(defaults.thresholds, '');
  if (issues.length) throw new PolicyValidationError(issues);
  // The model's bounds for a codec replace its generic ones, below the config and the stored defaults.
  const byCodec: Record<string, Thresholds> = {};
  for (const [codec, own] of Object.entries(model?.byCodec ?? {})) {
    // A key neither the admin nor the codec's bounds set keeps the generic default.
    const p = pickFrom(own);
    const t = mergeThresholds(defaults.thresholds, {
      dropLlr: p('dropLlr'),
      warnLlr: p('warnLlr'),
      humanLlr: p('humanLlr'),
      maxListenMs: p('maxListenMs'),
    });
    if (checkThresholds(t, '').length === 0) byCodec[codec] = t;
  }
  if (Object.keys(byCodec).length) defaults.byCodec = byCodec;
  return defaults;
}

export function parseDefaultsOverride(input: unknown): DefaultsOverride {
  const parsed = DefaultsInputSchema.safeParse(input);
  if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error));
  return parsed.data;
}

/**
 * Validates a rule (shape, patterns, and threshold ordering after inheriting `defaults`) and
 * returns it normalised. Throws PolicyValidationError naming each bad field.
 */
export function validateRule(
  input: unknown,
  defaults: PolicyDefaults,
  id: string,
  nowMs: number,
): PolicyRule {
  const parsed = RuleInputSchema.safeParse(input);
  if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error));
  const r = parsed.data;
  const rule: PolicyRule = {
    id: r.id ?? id,
    name: r.name,
    priority: r.priority,
    enabled: r.enabled,
    match: r.match,
    thresholds: r.thresholds,
    onSynthetic: r.onSynthetic,
    onUnsure: r.onUnsure,
    onError: r.onError,
    onRepeat: r.onRepeat,
    analyse: r.analyse,
    retainAudioSeconds: r.retainAudioSeconds,
    updatedAtMs: nowMs,
  };
  for (const k of Object.keys(rule) as (keyof PolicyRule)[]) if (rule[k] === undefined) delete rule[k];
  const issues = checkThresholds(mergeThresholds(defaults.thresholds, rule.thresholds), 'thresholds.');
  if (issues.length) throw new PolicyValidationError(issues);
  return rule;
}

/** Checks that every rule still has ordered thresholds under new defaults. */
export function checkRulesAgainstDefaults(
  rules: readonly PolicyRule[],
  defaults: PolicyDefaults,
): PolicyIssue[] {
  return rules.flatMap((r) =>
    checkThresholds(mergeThresholds(defaults.thresholds, r.thresholds), 'thresholds.').map((i) => ({
      field: i.field,
      message: `rule '${r.id}' (${r.name}) would become invalid: ${i.message}`,
    })),
  );
}

/** Whether two sets of thresholds are the same. */
export function sameThresholds(a: Thresholds, b: Thresholds): boolean {
  return (
    a.dropLlr === b.dropLlr &&
    a.warnLlr === b.warnLlr &&
    a.humanLlr === b.humanLlr &&
    a.maxListenMs === b.maxListenMs
  );
}

function mergeThresholds(base: Thresholds, over: Partial<Thresholds>): Thresholds {
  return {
    dropLlr: over.dropLlr ?? base.dropLlr,
    warnLlr: over.warnLlr ?? base.warnLlr,
    humanLlr: over.humanLlr ?? base.humanLlr,
    maxListenMs: over.maxListenMs ?? base.maxListenMs,
  };
}

export function compileSnapshot(input: SnapshotInput): PolicySnapshot {
  if (!isValidTimeZone(input.timeZone)) {
    throw new PolicyValidationError([
      { field: 'policy.timeZone', message: `unknown IANA time zone '${input.timeZone}'` },
    ]);
  }
  const rules = [...input.rules].sort((a, b) => a.priority - b.priority || a.id.localeCompare(b.id));
  const d = input.defaults;
  const compiledRules: CompiledRule[] = rules.map((rule) => {
    const m = rule.match;
    const analyse = rule.analyse ?? d.analyse;
    return {
      rule,
      trunks: m.trunks?.length ? new Set(m.trunks) : null,
      source: m.sourceAddresses?.length ? compileAddressList(m.sourceAddresses) : null,
      to: m.toNumbers?.length ? m.toNumbers.map(compileNumberPattern) : null,
      from: m.fromNumbers?.length ? m.fromNumbers.map(compileNumberPattern) : null,
      schedule: m.schedule?.length ? m.schedule.map(compileRange) : null,
      codecs: m.codecs?.length ? new Set(m.codecs) : null,
      policy: {
        treatment: analyse ? 'analyse' : 'allow',
        denyStatus: null,
        ruleId: rule.id,
        ruleName: rule.name,
        thresholds: mergeThresholds(d.thresholds, rule.thresholds),
        onSynthetic: rule.onSynthetic ?? d.onSynthetic,
        onUnsure: rule.onUnsure ?? d.onUnsure,
        onError: rule.onError ?? d.onError,
        onRepeat: rule.onRepeat ?? d.onRepeat,
        retainAudioSeconds: analyse ? (rule.retainAudioSeconds ?? d.retainAudioSeconds) : 0,
      },
    };
  });
  const compileList = (entries: ListEntry[]) =>
    entries.map((entry) => ({ entry, matches: compileNumberPattern(entry.pattern) }));
  return Object.freeze({
    version: input.version,
    timeZone: input.timeZone,
    denyStatus: input.denyStatus,
    defaults: d,
    rules,
    allow: input.allow,
    deny: input.deny,
    compiled: { rules: compiledRules, allow: compileList(input.allow), deny: compileList(input.deny) },
  });
}

function basePolicy(s: PolicySnapshot, codec?: string | null): CallPolicy {
  const d = s.defaults;
  const own = codec ? d.byCodec?.[codec] : undefined;
  return {
    treatment: d.analyse ? 'analyse' : 'allow',
    denyStatus: null,
    ruleId: null,
    ruleName: 'defaults',
    thresholds: { ...(own ?? d.thresholds) },
    ...(own ? { codecBounds: codec! } : {}),
    onSynthetic: d.onSynthetic,
    onUnsure: d.onUnsure,
    onError: d.onError,
    onRepeat: d.onRepeat,
    retainAudioSeconds: d.analyse ? d.retainAudioSeconds : 0,
  };
}

export function evaluatePolicy(snapshot: PolicySnapshot, facts: CallFacts): CallPolicy {
  const from = normaliseNumber(facts.fromNumber);
  const fromP = facts.fromPseudonym;
  const fromMatches = (m: NumberMatcher) => m(from) || (fromP !== undefined && m(fromP));
  const deny = snapshot.compiled.deny.find((e) => fromMatches(e.matches));
  if (deny) {
    return {
      ...basePolicy(snapshot),
      treatment: 'deny',
      denyStatus: deny.entry.sipStatus ?? snapshot.denyStatus,
      ruleName: `deny list: ${deny.entry.pattern}`,
      listEntryId: deny.entry.id,
      retainAudioSeconds: 0,
    };
  }
  const allow = snapshot.compiled.allow.find((e) => fromMatches(e.matches));
  if (allow) {
    return {
      ...basePolicy(snapshot),
      treatment: 'allow',
      ruleName: `allow list: ${allow.entry.pattern}`,
      listEntryId: allow.entry.id,
      retainAudioSeconds: 0,
    };
  }
  const to = normaliseNumber(facts.toNumber);
  let local: ReturnType<typeof localTime> | null = null;
  for (const c of snapshot.compiled.rules) {
    if (!c.rule.enabled) continue;
    if (c.trunks && (facts.trunk === null || !c.trunks.has(facts.trunk))) continue;
    if (c.source && !c.source(facts.sourceAddress)) continue;
    if (c.to && !c.to.some((m) => m(to))) continue;
    if (c.from && !c.from.some(fromMatches)) continue;
    if (c.codecs && !(facts.codec && c.codecs.has(facts.codec))) continue;
    if (c.schedule) {
      local ??= localTime(facts.at, snapshot.timeZone);
      const t = local;
      if (!c.schedule.some((r) => rangeMatches(r, t))) continue;
    }
    return withCodecBounds(snapshot, c, facts.codec);
  }
  return basePolicy(snapshot, facts.codec);
}

/**
 * A matching rule's policy for a call heard in `codec`: the thresholds the rule leaves out come from the
 * codec's own defaults where there are such (PolicyDefaults.byCodec) and the result stays in order;
 * else, and for other codecs, from the generic ones as compiled.
 */
function withCodecBounds(s: PolicySnapshot, c: CompiledRule, codec: string | null | undefined): CallPolicy {
  const own = codec ? s.defaults.byCodec?.[codec] : undefined;
  if (own && c.policy.treatment === 'analyse') {
    const t = mergeThresholds(own, c.rule.thresholds);
    if (!sameThresholds(t, c.policy.thresholds) && checkThresholds(t, '').length === 0)
      return { ...c.policy, thresholds: t, codecBounds: codec! };
  }
  return { ...c.policy, thresholds: { ...c.policy.thresholds } };
}

/** How strong an action is: a cap lets through what is at most as strong. */
const STRENGTH: Record<PolicyAction, number> = { log: 0, warn: 1, drop: 2 };

/** `action`, or `max` when `action` is stronger. */
export function capAction(action: PolicyAction, max: PolicyAction | undefined): PolicyAction {
  return max !== undefined && STRENGTH[action] > STRENGTH[max] ? max : action;
}

export interface Decision {
  action: PolicyAction;
  /** The action the policy named, when policy.maxAction made it weaker. */
  cappedFrom?: PolicyAction;
  /**
   * The capped action was carried out already (a known caller warned at warnLlr, then the verdict
   * named drop): nothing is done again, the decision only records what the cap spared.
   */
  again?: true;
}

/**
 * What to do on a detector event. `warn` fires once when the cumulative LLR first reaches
 * warnLlr (only if onSynthetic is warn or drop); the synthetic verdict triggers onSynthetic,
 * unsure triggers onUnsure, a detector error onError, audio repeated across callers onRepeat; an
 * action is never repeated, and after a drop nothing follows. Calls that are not analysed get no
 * actions. policy.maxAction caps every action (a known caller's drop becomes a warn).
 */
export function decideAction(
  policy: CallPolicy,
  event: DetectorEvent,
  taken: ReadonlySet<PolicyAction>,
): Decision | null {
  if (policy.treatment !== 'analyse' || taken.has('drop')) return null;
  let named: PolicyAction | null;
  switch (event.kind) {
    case 'score':
      named =
        policy.onSynthetic !== 'log' && event.cumulativeLlr >= policy.thresholds.warnLlr ? 'warn' : null;
      break;
    case 'verdict':
      named =
        event.verdict === 'synthetic'
          ? policy.onSynthetic
          : event.verdict === 'unsure'
            ? policy.onUnsure
            : null;
      break;
    case 'error':
      named = policy.onError;
      break;
    case 'repeat':
      named = policy.onRepeat;
      break;
  }
  if (named === null) return null;
  const action = capAction(named, policy.maxAction);
  if (action === named) return taken.has(action) ? null : { action };
  return taken.has(action) ? { action, cappedFrom: named, again: true } : { action, cappedFrom: named };
}

/**
 * What the gateway does on a detector fault: onError, except that a fault never drops a call by itself.
 * A drop, also one a known caller's cap made a warn, becomes a log (fail open).
 */
export function decideOnDetectorError(policy: CallPolicy, taken: ReadonlySet<PolicyAction>): Decision | null {
  const d = decideAction(policy, { kind: 'error' }, taken);
  if ((d?.cappedFrom ?? d?.action) !== 'drop') return d;
  return taken.has('log') ? null : { action: 'log' };
}

/** decideAction's new action alone (null also when a decision only records a cap). */
export function nextAction(
  policy: CallPolicy,
  event: DetectorEvent,
  taken: ReadonlySet<PolicyAction>,
): PolicyAction | null {
  const d = decideAction(policy, event, taken);
  return d && !d.again ? d.action : null;
}
