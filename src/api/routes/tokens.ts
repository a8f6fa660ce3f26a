import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../../store/store-types.js';
import { ApiError } from '../api-error.js';
import type { ApiDeps } from '../api-deps.js';
import { errors, idParam, TokenJson } from '../schemas.js';

/** API tokens: list, create (value shown once), revoke. Admin only. */
export const tokensRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store }) => {
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
};
