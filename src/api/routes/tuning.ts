import type { FastifyPluginAsync } from 'fastify';
import { computeTuning } from '../../policy/tuning.js';
import { parseTime, type ApiDeps } from '../api-deps.js';
import { errors, timeParam } from '../schemas.js';

const bins = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      lo: { type: 'number' },
      hi: { type: 'number' },
      human: { type: 'integer' },
      robot: { type: 'integer' },
    },
  },
};

/** Threshold tuning data from labelled past calls. */
export const tuningRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, policy }) => {
  app.get<{
    Querystring: { from?: string; to?: string; dropLlr?: number; warnLlr?: number; codec?: 'g711' | 'g729' };
  }>(
    '/api/tuning',
    {
      schema: {
        tags: ['tuning'],
        summary:
          'Labelled score distributions, ROC/DET points, per-threshold counts and a what-if for given thresholds',
        description:
          'Score = the highest cumulative LLR a call reached. Robots are positives. whatIf defaults to the current policy defaults. ' +
          'perThreshold lets a slider show, for any threshold, how many calls/labelled humans/labelled robots reached it.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: timeParam,
            to: timeParam,
            dropLlr: { type: 'number', minimum: -1000, maximum: 1000 },
            warnLlr: { type: 'number', minimum: -1000, maximum: 1000 },
            codec: {
              type: 'string',
              enum: ['g711', 'g729'],
              description:
                "Only calls whose caller audio came in this codec (g711: PCMU or PCMA), e.g. to set a G.729 rule's bounds",
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              labelled: {
                type: 'object',
                properties: { human: { type: 'integer' }, robot: { type: 'integer' } },
              },
              analysedCalls: { type: 'integer' },
              distributions: {
                type: 'object',
                properties: { finalLlr: bins, maxLlr: bins, maxWindowLlr: bins },
              },
              roc: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    thresholdLlr: { type: 'number' },
                    tpr: { type: 'number' },
                    fpr: { type: 'number' },
                    fnr: { type: 'number' },
                  },
                },
              },
              auc: { type: ['number', 'null'] },
              perThreshold: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    thresholdLlr: { type: 'number' },
                    calls: { type: 'integer' },
                    humans: { type: 'integer' },
                    robots: { type: 'integer' },
                  },
                },
              },
              whatIf: {
                type: 'object',
                properties: {
                  ...Object.fromEntries(['dropLlr', 'warnLlr'].map((k) => [k, { type: 'number' }])),
                  ...Object.fromEntries(
                    [
                      'analysedCalls',
                      'dropped',
                      'warned',
                      'humansDropped',
                      'humansWarned',
                      'robotsDropped',
                      'robotsWarned',
                      'robotsMissed',
                    ].map((k) => [k, { type: 'integer' }]),
                  ),
                  humansDroppedUpper95: {
                    type: ['number', 'null'],
                    description:
                      '95% exact (Clopper-Pearson) upper bound on the share of human callers dropped, from the labelled humans; null without any',
                  },
                  robotsDroppedLower95: {
                    type: ['number', 'null'],
                    description:
                      '95% exact lower bound on the share of robots dropped; null without labelled robots',
                  },
                },
              },
              falseDropCallers: {
                type: 'array',
                description:
                  'Callers whose dropped calls were labelled human, most first (at most 20): candidates for the allow list.',
                items: {
                  type: 'object',
                  properties: {
                    fromNumber: { type: 'string' },
                    calls: { type: 'integer' },
                    lastAtMs: { type: 'integer' },
                    lastCallId: { type: 'string' },
                  },
                  required: ['fromNumber', 'calls', 'lastAtMs', 'lastCallId'],
                },
              },
            },
            required: [
              'labelled',
              'analysedCalls',
              'distributions',
              'roc',
              'auc',
              'perThreshold',
              'whatIf',
              'falseDropCallers',
            ],
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const d = policy.current().defaults.thresholds;
      const fromMs = parseTime(q.from, 'from') ?? 0;
      const toMs = parseTime(q.to, 'to') ?? Number.MAX_SAFE_INTEGER;
      const rows = store.tuningRows(fromMs, toMs, q.codec);
      return {
        ...computeTuning(rows, q.dropLlr ?? d.dropLlr, q.warnLlr ?? d.warnLlr),
        falseDropCallers: store.falseDropCallers(fromMs, toMs, 20, q.codec),
      };
    },
  );
};
