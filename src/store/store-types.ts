import type { PolicyAction } from '../config/schema.js';
import type { CallDirection, Verdict } from '../call-events.js';

/** Row shapes the store returns to the API. Times are epoch milliseconds. */
export type Label = 'human' | 'robot';
export type Role = 'viewer' | 'admin';

export interface CallSummary {
  id: string;
  sipCallId: string;
  direction: CallDirection;
  trunk: string | null;
  sourceAddress: string;
  fromNumber: string;
  toNumber: string;
  ruleId: string | null;
  treatment: string;
  startedAtMs: number;
  answeredAtMs: number | null;
  endedAtMs: number | null;
  durationMs: number | null;
  codec: string | null;
  endReason: string | null;
  sipStatus: number | null;
  verdict: Verdict | null;
  decisionMs: number | null;
  finalLlr: number | null;
  maxLlr: number | null;
  maxWindowLlr: number | null;
  scoreCount: number;
  actions: PolicyAction[];
  detectorError: string | null;
  /** Earlier calls whose caller audio this call's repeats (null: not compared, or no repeat). */
  repeatCalls: number | null;
  /** Distinct other callers among them. */
  repeatCallers: number | null;
  /** The earliest of them. */
  repeatFirstCallId: string | null;
  /** Earlier calls that made the caller known when this call started (policy.knownCallers); null = not known. */
  knownCallerCalls: number | null;
  /** The latest of them. */
  knownCallerLastCallId: string | null;
  label: Label | null;
  hasAudio: boolean;
}

export interface ScorePoint {
  atMs: number;
  tMs: number;
  llr: number;
  cumulativeLlr: number;
}

export interface CallDetail {
  call: CallSummary;
  scores: ScorePoint[];
  verdict: { verdict: Verdict; decisionMs: number | null; cumulativeLlr: number; atMs: number } | null;
  actions: { action: PolicyAction; reason: string; atMs: number }[];
  labels: LabelRecord[];
}

export interface LabelRecord {
  id: number;
  label: Label;
  note: string;
  by: string;
  atMs: number;
}

/** Calls by the codec of the caller's audio: G.711 (PCMU, PCMA), G.729, or another one (not analysed) or none. */
export type CodecFilter = 'g711' | 'g729' | 'other';

export interface CallFilter {
  limit: number;
  cursor?: string | null;
  verdict?: Verdict | 'none';
  action?: PolicyAction;
  label?: Label | 'none';
  treatment?: string;
  trunk?: string;
  ruleId?: string;
  fromMs?: number;
  toMs?: number;
  q?: string;
  /** yes: calls whose caller audio repeated earlier calls; no: the others. */
  repeat?: 'yes' | 'no';
  /** yes: calls whose caller was known (actions capped, policy.knownCallers); no: the others. */
  known?: 'yes' | 'no';
  /** A call and the calls whose audio repeated it (their first match). */
  repeatOf?: string;
  codec?: CodecFilter;
}

export interface CallPage {
  items: CallSummary[];
  nextCursor: string | null;
  total: number;
}

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  createdAtMs: number;
  createdBy: string;
  lastUsedAtMs: number | null;
  revokedAtMs: number | null;
}

export interface AuditRecord {
  id: number;
  atMs: number;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

/** One analysed call as the tuning view needs it. */
/** A caller whose dropped calls were labelled human (Store.falseDropCallers). */
export interface FalseDropCaller {
  /** As stored: the clear number, or its pseudonym when the store keeps no clear numbers. */
  fromNumber: string;
  calls: number;
  lastAtMs: number;
  lastCallId: string;
}

export interface TuningRow {
  maxLlr: number;
  finalLlr: number;
  maxWindowLlr: number;
  label: Label | null;
}

export interface StoreStats {
  fromMs: number;
  toMs: number;
  calls: number;
  analysed: number;
  byTreatment: Record<string, number>;
  byVerdict: { synthetic: number; human: number; unsure: number; none: number };
  byAction: { drop: number; warn: number; log: number };
  labelled: { human: number; robot: number };
  hourly: { hourStartMs: number; calls: number; synthetic: number }[];
}
