import type { Config, PolicyAction } from '../config/schema.js';
import type { CallPolicy } from './evaluate.js';

/**
 * Known callers (policy.knownCallers). The detector's false drops cluster on voices: a held-out
 * voice can be dropped in one call of ten while the average human is dropped in one of three
 * hundred (models/MODEL_CARD.md). Such a caller, if they call regularly, would be dropped again
 * and again. A caller whose earlier calls were plainly human conversations is therefore capped:
 * their calls are still analysed and warned about, but never dropped.
 *
 * Robots rotate caller IDs and are dropped or hung up on within seconds, so a number with long,
 * undisputed calls behind it is rarely a robot's. One robot label on any of the caller's calls in
 * the window ends the protection.
 */

/** What the store knows of one caller's earlier inbound calls in the window (Store.callerHistory). */
export interface CallerHistory {
  /** Unlabelled calls answered and talked for minTalkSeconds, with no synthetic verdict, no drop and no repeat. */
  conversations: number;
  /** Calls labelled human by an admin. */
  humanLabels: number;
  /** Calls labelled robot by an admin. */
  robotLabels: number;
  /** The latest call that counted (a conversation or labelled human). */
  lastCallId: string | null;
}

/** Why a caller is known: recorded with the call and shown in the console. */
export interface KnownCaller {
  /** Earlier calls that counted (conversations and calls labelled human, each call once). */
  calls: number;
  humanLabels: number;
  lastCallId: string;
}

export type KnownCallersConfig = Config['policy']['knownCallers'];

/** The caller's standing from their history; null = not known. */
export function knownCaller(history: CallerHistory | null, cfg: KnownCallersConfig): KnownCaller | null {
  if (!cfg.enabled || !history || history.robotLabels > 0 || history.lastCallId === null) return null;
  if (history.humanLabels === 0 && history.conversations < cfg.minCalls) return null;
  return {
    calls: history.conversations + history.humanLabels,
    humanLabels: history.humanLabels,
    lastCallId: history.lastCallId,
  };
}

/** The policy with its actions capped at cfg.capAction for a known caller (unchanged otherwise). */
export function protectKnownCaller(
  policy: CallPolicy,
  known: KnownCaller | null,
  capAction: PolicyAction,
): CallPolicy {
  if (!known || policy.treatment !== 'analyse') return policy;
  return { ...policy, maxAction: capAction, knownCaller: known };
}

/** Store.callerHistory's shape: a caller's earlier calls since sinceMs, minTalkMs of talk to count. */
export type CallerHistorySource = (fromNumber: string, sinceMs: number, minTalkMs: number) => CallerHistory;

/**
 * The policy of an inbound call from `fromNumber`, capped if the caller is known (the one entry
 * point for the gateway and the API's dry run). Throws what `history` throws.
 */
export function knownCallerPolicy(
  policy: CallPolicy,
  fromNumber: string,
  cfg: KnownCallersConfig,
  history: CallerHistorySource,
  nowMs: number,
): CallPolicy {
  if (!cfg.enabled || policy.treatment !== 'analyse' || !identifiesCaller(fromNumber)) return policy;
  const known = knownCaller(
    history(fromNumber, nowMs - cfg.windowDays * 86_400_000, cfg.minTalkSeconds * 1000),
    cfg,
  );
  return protectKnownCaller(policy, known, cfg.capAction);
}

/**
 * A number that can identify a caller: at least three digits. Anonymous and withheld callers
 * ("anonymous", "", "unknown") share one From user part and must never inherit anyone's history.
 */
export function identifiesCaller(fromNumber: string): boolean {
  return (fromNumber.match(/\d/g)?.length ?? 0) >= 3;
}
