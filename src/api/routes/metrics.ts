import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../api-deps.js';
import { metrics } from '../metrics.js';

/** Prometheus scrape endpoint (unauthenticated, like most exporters; keep the API on a private address). */
export const metricsRoutes: FastifyPluginAsync<ApiDeps> = async (app) => {
  app.get(
    '/metrics',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['system'],
        security: [],
        summary: 'Prometheus metrics (text exposition format)',
        produces: ['text/plain'],
        response: { 200: { type: 'string' } },
      },
    },
    async (_request, reply) => {
      reply.header('content-type', metrics.contentType);
      return metrics.metrics();
    },
  );
};
