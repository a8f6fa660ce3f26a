import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../api-deps.js';

/** Unauthenticated liveness probe. */
export const healthRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, policy, live }) => {
  const startedAtMs = Date.now();
  app.get(
    '/health',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['system'],
        security: [],
        summary: 'Liveness and basic state',
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string', enum: ['ok'] },
              uptimeMs: { type: 'integer' },
              liveCalls: { type: 'integer' },
              policyVersion: { type: 'integer' },
              storeQueued: { type: 'integer' },
              registrations: {
                type: 'array',
                description: 'Trunk registrations with carriers (sip.trunks[].register)',
                items: {
                  type: 'object',
                  properties: {
                    trunk: { type: 'string' },
                    state: { type: 'string', enum: ['registering', 'registered', 'failed', 'stopped'] },
                    expiresAtMs: { type: ['integer', 'null'] },
                  },
                },
              },
            },
            required: ['status', 'uptimeMs'],
          },
          503: {
            type: 'object',
            properties: { status: { type: 'string' }, problem: { type: 'string' } },
          },
        },
      },
    },
    async (_request, reply) => {
      if (store.closed) return reply.status(503).send({ status: 'unavailable', problem: 'store closed' });
      return {
        status: 'ok',
        uptimeMs: Date.now() - startedAtMs,
        liveCalls: live.list().length,
        policyVersion: policy.current().version,
        storeQueued: store.queued,
        registrations: live.registrations?.() ?? [],
      };
    },
  );
};
