import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../../store/store-types.js';
import { ApiError } from '../api-error.js';
import type { ApiDeps } from '../api-deps.js';
import { AuditJson, errors, idParam, TokenJson } from '../schemas.js';

/** Login, API tokens and the audit trail. */
export const adminRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, config }) => {
  app.post<{ Body: { token: string } }>(
    '/api/auth/login',
    {
      config: {
        auth: 'public',
        rateLimit: { max: config.api.loginRateLimit.max, timeWindow: config.api.loginRateLimit.windowMs },
      },
      schema: {
        tags: ['auth'],
        summary: 'Check a token and learn its name and role (rate-limited, audited)',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { token: { type: 'string', minLength: 1, maxLength: 200 } },
          required: ['token'],
        },
        response: {
          200: {
            type: 'object',
            properties: { name: { type: 'string' }, role: { type: 'string', enum: ['viewer', 'admin'] } },
            required: ['name', 'role'],
          },
          ...errors(400, 401, 429),
        },
      },
    },
    async (request) => {
      const record = store.findToken(request.body.token);
      if (!record) {
        store.audit(`ip:${request.ip}`, 'auth.login_failed', '', { ip: request.ip });
        request.log.warn({ event: 'api.login_failed', ip: request.ip }, 'login with an invalid token');
        throw new ApiError(401, 'invalid or revoked API token');
      }
      store.audit(record.name, 'auth.login', record.id, { ip: request.ip, role: record.role });
      store.touchToken(record.id);
      return { name: record.name, role: record.role };
    },
  );

  app.get(
    '/api/auth/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'The name and role of the presented token',
        response: {
          200: {
            type: 'object',
            properties: { name: { type: 'string' }, role: { type: 'string' } },
            required: ['name', 'role'],
          },
          ...errors(401),
        },
      },
    },
    async (request) => ({ name: request.principal!.name, role: request.principal!.role }),
  );

  app.get(
    '/api/tokens',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'API tokens (never their values)',
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: TokenJson } },
            required: ['items'],
          },
          ...errors(401, 403),
        },
      },
    },
    async () => ({ items: store.listTokens() }),
  );

  app.post<{ Body: { name: string; role: Role } }>(
    '/api/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Create a token; its value is returned once and only its hash is kept',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            role: { type: 'string', enum: ['viewer', 'admin'] },
          },
          required: ['name', 'role'],
        },
        response: {
          201: {
            type: 'object',
            properties: { ...TokenJson.properties, token: { type: 'string' } },
            required: [...TokenJson.required, 'token'],
          },
          ...errors(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const by = request.principal!.name;
      const { record, token } = store.createToken(request.body.name, request.body.role, by);
      store.audit(by, 'token.created', record.id, { name: record.name, role: record.role });
      return reply.status(201).send({ ...record, token });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/tokens/:id',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token (the last admin token cannot be revoked)',
        params: { type: 'object', properties: { id: idParam }, required: ['id'] },
        response: { 204: { type: 'null' }, ...errors(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const t = store.getToken(request.params.id);
      if (!t || t.revokedAtMs !== null)
        throw new ApiError(404, `token '${request.params.id}' not found or already revoked`);
      if (t.role === 'admin' && store.countActiveAdmins() <= 1)
        throw new ApiError(409, 'cannot revoke the last admin token; create another admin token first');
      store.revokeToken(t.id);
      store.audit(request.principal!.name, 'token.revoked', t.id, { name: t.name, role: t.role });
      return reply.status(204).send();
    },
  );

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
