import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../api-deps.js';
import { AuditJson, errors } from '../schemas.js';

/** The audit trail. Admin only. */
export const auditRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store }) => {
  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    '/api/audit',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['audit'],
        summary: 'Audit trail of policy, list, label and token changes and logins, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
            cursor: { type: 'string', pattern: '^[0-9]{1,15}$' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: AuditJson },
              nextCursor: { type: ['string', 'null'] },
            },
            required: ['items', 'nextCursor'],
          },
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) =>
      store.listAudit(request.query.limit ?? 100, request.query.cursor ? Number(request.query.cursor) : null),
  );
};
