import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../api-error.js';
import type { ApiDeps } from '../api-deps.js';
import { errors } from '../schemas.js';

/** Login (token check for the console, rate-limited and audited) and who-am-I. */
export const authRoutes: FastifyPluginAsync<ApiDeps> = async (app, { store, config }) => {
  app.post<{ Body: { token: string } }>(
    '/api/auth/login',
    {
      config: {
        auth: 'public',
        rateLimit: { max: config.api.loginRateLimit.max, timeWindow: config.api.loginRateLimit.windowMs },
      },
      schema: {
        tags: ['auth'],
        security: [],
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
};
