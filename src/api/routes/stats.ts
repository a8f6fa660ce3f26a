import type { FastifyPluginAsync } from 'fastify';
import { parseTime, type ApiDeps } from '../api-deps.js';
import { errors, timeParam } from '../schemas.js';

/** Dashboard counts. */
export const statsRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, live }) => {
  app.get<{ Querystring: { from?: string; to?: string } }>(
    '/api/stats',
    {
      schema: {
        tags: ['stats'],
        summary:
          'Counts by treatment, verdict, action and label, plus hourly calls for the last 24 h of the range',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { from: timeParam, to: timeParam },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              fromMs: { type: 'integer' },
              toMs: { type: 'integer' },
              live: { type: 'integer' },
              calls: { type: 'integer' },
              analysed: { type: 'integer' },
              byTreatment: { type: 'object', additionalProperties: { type: 'integer' } },
              byVerdict: { type: 'object', additionalProperties: { type: 'integer' } },
              byAction: { type: 'object', additionalProperties: { type: 'integer' } },
              labelled: { type: 'object', additionalProperties: { type: 'integer' } },
              hourly: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    hourStartMs: { type: 'integer' },
                    calls: { type: 'integer' },
                    synthetic: { type: 'integer' },
                  },
                },
              },
            },
            required: ['fromMs', 'toMs', 'live', 'calls', 'byVerdict', 'byAction', 'labelled', 'hourly'],
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const toMs = parseTime(request.query.to, 'to') ?? Date.now() + 1;
      const fromMs = parseTime(request.query.from, 'from') ?? toMs - 30 * 86_400_000;
      return { ...store.stats(fromMs, toMs), live: live.list().length };
    },
  );
};
