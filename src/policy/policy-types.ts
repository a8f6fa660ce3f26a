import { z } from 'zod';
import { ActionSchema, type PolicyAction } from '../config/schema.js';
import { parseAddressEntry } from './address-match.js';
import { checkNumberPattern } from './number-pattern.js';
import { HHMM, WEEKDAYS, type ScheduleRange } from './schedule.js';

/**
 * The shapes of policy data: rules, list entries, defaults. The zod schemas are the single
 * source for validation of the rules file, the store contents and the API (which renders them
 * to JSON Schema for fastify and OpenAPI).
 */
export type { PolicyAction };

export interface Thresholds {
  dropLlr: number;
  warnLlr: number;
  humanLlr: number;
  maxListenMs: number;
}

const llr = (what: string) => z.number().min(-1000).max(1000).describe(what);
export const PartialThresholdsSchema = z.strictObject({
  dropLlr: llr('Cumulative LLR at which the call is judged synthetic (drop bound)').optional(),
  warnLlr: llr('Cumulative LLR at which the warn action fires; must be <= dropLlr').optional(),
  humanLlr: llr('Cumulative LLR at or below which the caller is judged human; must be < warnLlr').optional(),
  maxListenMs: z
    .number()
    .int()
    .min(500)
    .max(60_000)
    .describe('Most caller speech analysed before "unsure"')
    .optional(),
});

const numberPattern = z
  .string()
  .min(1)
  .max(64)
  .superRefine((p, ctx) => {
    const problem = checkNumberPattern(p);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const addressEntry = z
  .string()
  .min(1)
  .max(64)
  .superRefine((a, ctx) => {
    try {
      parseAddressEntry(a);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const hhmm = z.string().regex(HHMM, { message: 'must be a time of day HH:MM (00:00-23:59)' });

export const ScheduleRangeSchema = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1).describe('Days of the week the range starts on'),
  start: hhmm.describe('Local start time HH:MM (inclusive)'),
  end: hhmm.describe('Local end time HH:MM (exclusive); before start = crosses midnight; equal = whole day'),
});

/** Codecs the detector hears a call in (media.codecs, media.fallbackCodecs), as rules name them. */
export const ANALYSIS_CODECS = ['pcmu', 'pcma', 'g729'] as const;
export type AnalysisCodec = (typeof ANALYSIS_CODECS)[number];

export const RuleMatchSchema = z
  .strictObject({
    trunks: z.array(z.string().min(1).max(100)).max(100).optional().describe('Trunk names (any of)'),
    sourceAddresses: z
      .array(addressEntry)
      .max(1000)
      .optional()
      .describe('Source IPs or CIDR ranges (any of)'),
    toNumbers: z.array(numberPattern).max(1000).optional().describe('Called-number (DID) patterns (any of)'),
    fromNumbers: z.array(numberPattern).max(1000).optional().describe('Calling-number patterns (any of)'),
    schedule: z
      .array(ScheduleRangeSchema)
      .max(50)
      .optional()
      .describe('Time-of-day ranges (any of) in the policy time zone'),
    codecs: z
      .array(z.enum(ANALYSIS_CODECS))
      .min(1)
      .max(ANALYSIS_CODECS.length)
      .optional()
      .describe(
        "The codec the caller's audio is analysed in, from the INVITE's SDP offer (any of): pcmu, pcma, g729 (media.fallbackCodecs). An INVITE without SDP (delayed offer) is matched again when the caller's answer names the codec",
      ),
  })
  .describe(
    'All given criteria must match; within one criterion any entry may match; no criteria = every call',
  );

export const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const RuleInputSchema = z.strictObject({
  id: z
    .string()
    .regex(RULE_ID, { message: 'must be 1-64 letters, digits, _ . - (starting with a letter or digit)' })
    .optional()
    .describe('Stable id; generated when left out'),
  name: z.string().min(1).max(200).describe('Shown in the console and in call records'),
  priority: z
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(100)
    .describe('Lower runs first; the first matching rule wins'),
  enabled: z.boolean().default(true),
  match: RuleMatchSchema.default({}),
  thresholds: PartialThresholdsSchema.default({}).describe('Missing thresholds inherit the policy defaults'),
  onSynthetic: ActionSchema.optional().describe('Action on a synthetic verdict (default: policy default)'),
  onUnsure: ActionSchema.optional().describe(
    'Action when listening ran out undecided (default: policy default)',
  ),
  onError: ActionSchema.optional().describe('Action on detector failure (default: policy default)'),
  onRepeat: ActionSchema.optional().describe(
    "Action when the caller's audio repeats other callers' recent calls (default: policy default)",
  ),
  analyse: z.boolean().optional().describe('false = matching calls pass without analysis'),
  retainAudioSeconds: z
    .number()
    .int()
    .min(0)
    .max(60)
    .optional()
    .describe('Keep the first N seconds of caller audio (0 = none)'),
});
export type RuleInput = z.input<typeof RuleInputSchema>;

export interface PolicyRule {
  id: string;
  name: string;
  priority: number;
  enabled: boolean;
  match: {
    trunks?: string[];
    sourceAddresses?: string[];
    toNumbers?: string[];
    fromNumbers?: string[];
    schedule?: ScheduleRange[];
    codecs?: AnalysisCodec[];
  };
  thresholds: Partial<Thresholds>;
  onSynthetic?: PolicyAction;
  onUnsure?: PolicyAction;
  onError?: PolicyAction;
  onRepeat?: PolicyAction;
  analyse?: boolean;
  retainAudioSeconds?: number;
  updatedAtMs: number;
}

export const DefaultsInputSchema = PartialThresholdsSchema.extend({
  onSynthetic: ActionSchema.optional(),
  onUnsure: ActionSchema.optional(),
  onError: ActionSchema.optional(),
  onRepeat: ActionSchema.optional(),
  analyse: z.boolean().optional(),
  retainAudioSeconds: z.number().int().min(0).max(60).optional(),
}).describe(
  'Overrides of config.policy.defaults; keys left out fall back to the config file, then the model metadata',
);
export type DefaultsOverride = z.infer<typeof DefaultsInputSchema>;

export interface PolicyDefaults {
  thresholds: Thresholds;
  /**
   * The thresholds of calls heard in a codec that the model has bounds of its own for (its metadata's
   * decision.byCodec, e.g. g729): they stand in for the model's generic bounds, under whatever the
   * config and the stored defaults set. Absent: no such codec (or its bounds would be out of order).
   */
  byCodec?: Record<string, Thresholds>;
  onSynthetic: PolicyAction;
  onUnsure: PolicyAction;
  onError: PolicyAction;
  onRepeat: PolicyAction;
  analyse: boolean;
  retainAudioSeconds: number;
}

export type ListKind = 'allow' | 'deny';
export const ListEntryInputSchema = z.strictObject({
  pattern: numberPattern.describe('Calling-number pattern (exact, prefix*, or _Asterisk)'),
  sipStatus: z
    .number()
    .int()
    .min(400)
    .max(699)
    .nullable()
    .optional()
    .describe('Deny list only: SIP status (default policy.denyStatus)'),
  note: z.string().max(500).optional(),
});
export type ListEntryInput = z.infer<typeof ListEntryInputSchema>;

export interface ListEntry {
  id: string;
  kind: ListKind;
  pattern: string;
  sipStatus: number | null;
  note: string;
  createdAtMs: number;
  createdBy: string;
}

/** One failed check: `field` is the dotted key path (`thresholds.warnLlr`). */
export interface PolicyIssue {
  field: string;
  message: string;
}

export class PolicyValidationError extends Error {
  /** `source` names the file the issues were found in, if any. */
  constructor(
    readonly issues: PolicyIssue[],
    readonly source: string | null = null,
  ) {
    super(
      (source ? `${source}: ` : '') +
        issues.map((i) => `${i.field || '(top level)'}: ${i.message}`).join('; '),
    );
    this.name = 'PolicyValidationError';
  }
  get field(): string {
    return this.issues[0]?.field ?? '';
  }
}

/** Zod issues as PolicyIssues, naming allowed values for enums. */
export function zodIssues(error: z.ZodError, prefix = ''): PolicyIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys' && issue.keys.length === 1) path.push(issue.keys[0]!);
    const field = [prefix, ...path].filter(Boolean).join('.');
    let message = issue.message;
    if (issue.code === 'invalid_value')
      message = `invalid value; allowed values: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    if (issue.code === 'unrecognized_keys')
      message = `unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    return { field, message };
  });
}

/** The ordering the SPRT needs: humanLlr < warnLlr <= dropLlr. */
export function checkThresholds(t: Thresholds, prefix: string): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  if (!(t.warnLlr <= t.dropLlr)) {
    issues.push({
      field: `${prefix}warnLlr`,
      message: `warnLlr (${t.warnLlr}) must be <= dropLlr (${t.dropLlr})`,
    });
  }
  if (!(t.humanLlr < t.warnLlr)) {
    issues.push({
      field: `${prefix}humanLlr`,
      message: `humanLlr (${t.humanLlr}) must be < warnLlr (${t.warnLlr})`,
    });
  }
  return issues;
}
