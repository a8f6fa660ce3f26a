import { z } from 'zod';
import { DefaultsInputSchema, ListEntryInputSchema, RuleInputSchema } from '../policy/policy-types.js';

/**
 * JSON schemas shared by the routes. Policy input shapes are rendered from the zod schemas in
 * src/policy (the one source for the rules file, the store and the API); the rest are the
 * response shapes, which fastify also uses to serialise (unknown keys are never leaked).
 */
type JsonSchema = Record<string, unknown>;

export function fromZod(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchema;
  delete out.$schema;
  return out;
}

const str = { type: 'string' };
const int = { type: 'integer' };
const num = { type: 'number' };
const nullable = (t: string) => ({ type: [t, 'null'] });
const action = { type: 'string', enum: ['drop', 'warn', 'log'] };
const verdict = { type: 'string', enum: ['synthetic', 'human', 'unsure'] };
const label = { type: 'string', enum: ['human', 'robot'] };

export const ErrorSchema = {
  $id: 'ApiError',
  type: 'object',
  description: 'Every error: `field` names the offending input key (dotted path) when there is one',
  properties: {
    statusCode: int,
    error: str,
    message: str,
    field: str,
    issues: { type: 'array', items: { type: 'object', properties: { field: str, message: str } } },
  },
  required: ['statusCode', 'error', 'message'],
};

export const errorRef = { $ref: 'ApiError#' };
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, errorRef]));

export const RuleInputJson = fromZod(RuleInputSchema);
export const DefaultsInputJson = fromZod(DefaultsInputSchema);
export const ListEntryInputJson = fromZod(ListEntryInputSchema);

const thresholdsJson = {
  type: 'object',
  properties: { dropLlr: num, warnLlr: num, humanLlr: num, maxListenMs: int },
  required: ['dropLlr', 'warnLlr', 'humanLlr', 'maxListenMs'],
};

export const RuleJson = {
  ...RuleInputJson,
  properties: { ...(RuleInputJson.properties as JsonSchema), updatedAtMs: int },
  required: ['id', 'name', 'priority', 'enabled', 'match', 'thresholds', 'updatedAtMs'],
};

export const DefaultsJson = {
  type: 'object',
  properties: {
    thresholds: thresholdsJson,
    onSynthetic: action,
    onUnsure: action,
    onError: action,
    onRepeat: action,
    analyse: { type: 'boolean' },
    retainAudioSeconds: int,
    byCodec: {
      type: 'object',
      description:
        "Thresholds of calls heard in a codec the model has bounds of its own for (its metadata's decision.byCodec), under the config's and the stored override's",
      additionalProperties: thresholdsJson,
    },
  },
  required: ['thresholds', 'onSynthetic', 'onUnsure', 'onError', 'onRepeat', 'analyse', 'retainAudioSeconds'],
};

export const ListEntryJson = {
  type: 'object',
  properties: {
    id: str,
    kind: { type: 'string', enum: ['allow', 'deny'] },
    pattern: str,
    sipStatus: nullable('integer'),
    note: str,
    createdAtMs: int,
    createdBy: str,
  },
  required: ['id', 'kind', 'pattern', 'sipStatus', 'note', 'createdAtMs', 'createdBy'],
};

export const CallSummaryJson = {
  type: 'object',
  properties: {
    id: str,
    sipCallId: str,
    direction: { type: 'string', enum: ['inbound', 'outbound'] },
    trunk: nullable('string'),
    sourceAddress: str,
    fromNumber: str,
    toNumber: str,
    ruleId: nullable('string'),
    treatment: str,
    startedAtMs: int,
    answeredAtMs: nullable('integer'),
    endedAtMs: nullable('integer'),
    durationMs: nullable('integer'),
    codec: nullable('string'),
    endReason: nullable('string'),
    sipStatus: nullable('integer'),
    verdict: { type: ['string', 'null'], enum: ['synthetic', 'human', 'unsure', null] },
    decisionMs: nullable('integer'),
    finalLlr: nullable('number'),
    maxLlr: nullable('number'),
    maxWindowLlr: nullable('number'),
    scoreCount: int,
    actions: { type: 'array', items: action },
    detectorError: nullable('string'),
    repeatCalls: nullable('integer'),
    repeatCallers: nullable('integer'),
    repeatFirstCallId: nullable('string'),
    knownCallerCalls: nullable('integer'),
    knownCallerLastCallId: nullable('string'),
    label: { type: ['string', 'null'], enum: ['human', 'robot', null] },
    hasAudio: { type: 'boolean' },
  },
  required: ['id', 'startedAtMs', 'verdict', 'actions', 'label'],
};

export const LabelJson = {
  type: 'object',
  properties: { id: int, label, note: str, by: str, atMs: int },
  required: ['id', 'label', 'note', 'by', 'atMs'],
};

export const CallDetailJson = {
  type: 'object',
  properties: {
    call: CallSummaryJson,
    scores: {
      type: 'array',
      items: {
        type: 'object',
        properties: { atMs: int, tMs: int, llr: num, cumulativeLlr: num },
        required: ['tMs', 'cumulativeLlr'],
      },
    },
    verdict: {
      type: ['object', 'null'],
      properties: { verdict, decisionMs: nullable('integer'), cumulativeLlr: num, atMs: int },
    },
    actions: { type: 'array', items: { type: 'object', properties: { action, reason: str, atMs: int } } },
    labels: { type: 'array', items: LabelJson },
  },
  required: ['call', 'scores', 'verdict', 'actions', 'labels'],
};

export const LiveCallJson = {
  type: 'object',
  properties: {
    id: str,
    direction: str,
    trunk: nullable('string'),
    fromNumber: str,
    toNumber: str,
    ruleId: nullable('string'),
    treatment: str,
    startedAtMs: int,
    answeredAtMs: nullable('integer'),
    codec: nullable('string'),
    cumulativeLlr: nullable('number'),
    lastScoreTMs: nullable('integer'),
    recentScores: { type: 'array', items: { type: 'object', properties: { tMs: int, cumulativeLlr: num } } },
    verdict: { type: ['string', 'null'], enum: ['synthetic', 'human', 'unsure', null] },
    actions: { type: 'array', items: action },
    knownCaller: { type: 'boolean', description: 'policy.knownCallers: actions capped, never dropped' },
  },
  required: ['id', 'startedAtMs'],
};

export const TokenJson = {
  type: 'object',
  properties: {
    id: str,
    name: str,
    role: { type: 'string', enum: ['viewer', 'admin'] },
    createdAtMs: int,
    createdBy: str,
    lastUsedAtMs: nullable('integer'),
    revokedAtMs: nullable('integer'),
  },
  required: ['id', 'name', 'role', 'createdAtMs', 'createdBy', 'lastUsedAtMs', 'revokedAtMs'],
};

export const AuditJson = {
  type: 'object',
  properties: {
    id: int,
    atMs: int,
    actor: str,
    action: str,
    target: str,
    detail: { type: 'object', additionalProperties: true },
  },
  required: ['id', 'atMs', 'actor', 'action', 'target', 'detail'],
};

/** Time filters accept epoch milliseconds or an ISO 8601 date-time. */
export const timeParam = {
  type: 'string',
  description: 'Epoch milliseconds or ISO 8601 date-time',
  maxLength: 40,
};
export const idParam = { type: 'string', minLength: 1, maxLength: 128 };
