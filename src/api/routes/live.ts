import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../api-deps.js';
import { errors, LiveCallJson } from '../schemas.js';

/** Calls in progress, from the gateway's live registry. */
export const liveRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get(
    '/api/calls/live',
    {
      schema: {
        tags: ['calls'],
        summary: 'Calls in progress with their recent score',
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: LiveCallJson } },
            required: ['items'],
          },
          ...errors(401),
        },
      },
    },
    async () => ({ items: deps.live.list() }),
  );
};
