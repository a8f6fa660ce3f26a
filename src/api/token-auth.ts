import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Role } from '../store/store-types.js';
import { ApiError } from './api-error.js';

/**
 * Bearer-token authentication and role checks for /api routes.
 *
 * Each route declares `config.auth`: 'public' (no token), 'viewer' or 'admin'. When left out,
 * reads (GET/HEAD) need a viewer token and everything else an admin token, so a new mutation
 * route is admin-only unless someone deliberately opens it. Only routes with
 * `config.queryToken` (the SSE stream: EventSource cannot set headers) accept `?token=`.
 */
export type AuthLevel = 'public' | 'viewer' | 'admin';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthLevel;
    queryToken?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const TOUCH_INTERVAL_MS = 60_000;

export function requiredLevel(method: string, declared: AuthLevel | undefined): AuthLevel {
  if (declared) return declared;
  return method === 'GET' || method === 'HEAD' ? 'viewer' : 'admin';
}

export function installAuth(app: FastifyInstance, store: Store): void {
  const lastTouched = new Map<string, number>();
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/api/')) return;
    const cfg = request.routeOptions.config;
    const level = requiredLevel(request.method, cfg?.auth);
    if (level === 'public') return;
    const token = bearer(request, cfg?.queryToken === true);
    if (!token) throw new ApiError(401, 'missing API token: send "Authorization: Bearer <token>"');
    const record = store.findToken(token);
    if (!record) throw new ApiError(401, 'invalid or revoked API token');
    request.principal = { tokenId: record.id, name: record.name, role: record.role };
    if (level === 'admin' && record.role !== 'admin')
      throw new ApiError(403, `this needs an admin token; '${record.name}' is a ${record.role}`);
    const now = Date.now();
    if (now - (lastTouched.get(record.id) ?? 0) > TOUCH_INTERVAL_MS) {
      lastTouched.set(record.id, now);
      store.touchToken(record.id);
    }
  });
}

function bearer(request: FastifyRequest, allowQuery: boolean): string | null {
  const h = request.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1]! : null;
  }
  if (allowQuery) {
    const q = (request.query as Record<string, unknown> | undefined)?.token;
    if (typeof q === 'string' && q.length > 0) return q;
  }
  return null;
}

/** Creates the first admin token when none exists (from config, else random, logged once). */
export function bootstrapAdmin(store: Store, configured: string | null, logger: Logger): void {
  if (store.countActiveAdmins() > 0) return;
  if (configured) {
    if (store.findToken(configured)) return;
    const { record } = store.createToken('bootstrap-admin', 'admin', 'bootstrap', configured);
    store.audit('bootstrap', 'token.created', record.id, {
      name: record.name,
      role: record.role,
      source: 'config',
    });
    logger.info(
      { event: 'api.bootstrap_token', tokenId: record.id, source: 'config' },
      'admin token created from api.bootstrapAdminToken',
    );
    return;
  }
  const { record, token } = store.createToken('bootstrap-admin', 'admin', 'bootstrap');
  store.audit('bootstrap', 'token.created', record.id, {
    name: record.name,
    role: record.role,
    source: 'generated',
  });
  // Logged exactly once, at creation; only its hash is stored, so it cannot be shown again.
  logger.warn(
    { event: 'api.bootstrap_token', tokenId: record.id, source: 'generated', token },
    'no admin token existed: generated one (shown once; create named tokens and revoke this one)',
  );
}
