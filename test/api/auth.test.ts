import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/server.js';
import { ADMIN_TOKEN, startHarness, type Harness } from './api-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    api: { bootstrapAdminToken: ADMIN_TOKEN, loginRateLimit: { max: 3, windowMs: 60_000 } },
  });
});
afterAll(() => h.close());

const concrete = (url: string) => url.replace(':kind', 'allow').replace(/:[A-Za-z]+/g, 'x');

describe('authorization over the whole route table', () => {
  it('every /api mutation needs an admin token: 401 without a token, 403 with a viewer token', async () => {
    const mutations = h.app.routeTable.filter(
      (r) =>
        r.url.startsWith('/api/') &&
        !['GET', 'HEAD', 'OPTIONS'].includes(r.method) &&
        r.url !== '/api/auth/login',
    );
    // The table is derived from fastify's own route registrations: a new route cannot slip past.
    expect(mutations.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining([
        'POST /api/calls/:id/labels',
        'POST /api/policy/rules',
        'PUT /api/policy/rules/:id',
        'DELETE /api/policy/rules/:id',
        'PUT /api/policy/defaults',
        'POST /api/lists/:kind',
        'DELETE /api/lists/:kind/:id',
        'POST /api/tokens',
        'DELETE /api/tokens/:id',
      ]),
    );
    for (const r of mutations) {
      expect(r.auth, `${r.method} ${r.url}`).toBe('admin');
      const url = concrete(r.url);
      const none = await h.app.inject({ method: r.method as 'POST', url, payload: {} });
      expect(none.statusCode, `${r.method} ${url} without token`).toBe(401);
      const viewer = await h.app.inject({ method: r.method as 'POST', url, payload: {}, headers: h.viewer });
      expect(viewer.statusCode, `${r.method} ${url} as viewer`).toBe(403);
      expect(viewer.json()).toMatchObject({ statusCode: 403, message: expect.stringContaining('admin') });
    }
  });

  it('every /api read needs a token; admin-only reads refuse viewers', async () => {
    const reads = h.app.routeTable.filter((r) => r.url.startsWith('/api/') && r.method === 'GET');
    expect(reads.length).toBeGreaterThanOrEqual(12);
    for (const r of reads) {
      const url = concrete(r.url);
      const none = await h.app.inject({ method: 'GET', url });
      expect(none.statusCode, `GET ${url} without token`).toBe(401);
      // The event stream never ends; it is exercised over a real socket in events.test.ts.
      if (url === '/api/events') continue;
      const viewer = await h.app.inject({ method: 'GET', url, headers: h.viewer });
      if (r.auth === 'admin') expect(viewer.statusCode, `GET ${url} as viewer`).toBe(403);
      else expect(viewer.statusCode, `GET ${url} as viewer`).not.toBe(403);
    }
    expect(
      reads
        .filter((r) => r.auth === 'admin')
        .map((r) => r.url)
        .sort(),
    ).toEqual(['/api/audit', '/api/tokens']);
  });

  it('every route declares a response schema (except the swagger UI assets)', () => {
    const missing = h.app.routeTable.filter(
      (r) => !r.url.startsWith('/docs') && !r.hasResponseSchema && r.method !== 'HEAD',
    );
    expect(missing).toEqual([]);
  });

  it('rejects malformed and revoked tokens', async () => {
    expect(
      (await h.app.inject({ url: '/api/calls', headers: { authorization: 'Basic abc' } })).statusCode,
    ).toBe(401);
    expect(
      (await h.app.inject({ url: '/api/calls', headers: { authorization: 'Bearer nope' } })).statusCode,
    ).toBe(401);
    const created = await h.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: h.admin,
      payload: { name: 'temp', role: 'viewer' },
    });
    expect(created.statusCode).toBe(201);
    const { id, token } = created.json() as { id: string; token: string };
    expect(
      (await h.app.inject({ url: '/api/calls', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(200);
    expect(
      (await h.app.inject({ method: 'DELETE', url: `/api/tokens/${id}`, headers: h.admin })).statusCode,
    ).toBe(204);
    expect(
      (await h.app.inject({ url: '/api/calls', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(401);
  });

  it('accepts ?token= only on the event stream', async () => {
    expect((await h.app.inject({ url: `/api/calls?token=${ADMIN_TOKEN}` })).statusCode).toBe(401);
    expect(
      (
        await h.app.inject({
          method: 'POST',
          url: `/api/tokens?token=${ADMIN_TOKEN}`,
          payload: { name: 'x', role: 'admin' },
        })
      ).statusCode,
    ).toBe(401);
  });

  it('will not revoke the last admin token', async () => {
    const admins = h.store.listTokens().filter((t) => t.role === 'admin' && t.revokedAtMs === null);
    expect(admins).toHaveLength(1);
    const r = await h.app.inject({ method: 'DELETE', url: `/api/tokens/${admins[0]!.id}`, headers: h.admin });
    expect(r.statusCode).toBe(409);
  });

  it('token listing never shows token values or hashes', async () => {
    const body = (await h.app.inject({ url: '/api/tokens', headers: h.admin })).body;
    expect(body).not.toContain(ADMIN_TOKEN);
    expect(body).not.toMatch(/[0-9a-f]{64}/);
  });
});

describe('login', () => {
  it('returns name and role, audits success and failure, and is rate-limited', async () => {
    const ok = await h.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { token: h.viewerToken },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ name: 'viewer-1', role: 'viewer' });
    const bad = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { token: 'wrong' } });
    expect(bad.statusCode).toBe(401);
    const audit = h.store.listAudit(10, null).items.map((a) => a.action);
    expect(audit).toContain('auth.login');
    expect(audit).toContain('auth.login_failed');
    const third = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { token: 'wrong' } });
    expect(third.statusCode).toBe(401);
    const limited = await h.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { token: ADMIN_TOKEN },
    });
    expect(limited.statusCode).toBe(429);
  });
});

describe('bootstrap admin token', () => {
  it('generates one when none exists, logs it exactly once, and it works', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const h2 = await startHarness({ api: { bootstrapAdminToken: null } });
    // the harness server was built without a token; the store has no admin yet
    const revoked = h2.store.listTokens().filter((t) => t.role === 'admin');
    expect(revoked).toHaveLength(1); // generated by the harness server (silent logger)
    h2.store.db.prepare("UPDATE api_tokens SET revoked_ms = 1 WHERE role = 'admin'").run();
    const app = await createApiServer({
      config: h2.config,
      store: h2.store,
      policy: h2.policy,
      bus: h2.bus,
      logger,
    });
    const app2 = await createApiServer({
      config: h2.config,
      store: h2.store,
      policy: h2.policy,
      bus: h2.bus,
      logger,
    });
    const boot = lines.filter((l) => l.event === 'api.bootstrap_token');
    expect(boot).toHaveLength(1);
    const token = boot[0]!.token as string;
    expect(token).toMatch(/^vg_/);
    const r = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { token } });
    expect(r.json()).toEqual({ name: 'bootstrap-admin', role: 'admin' });
    await app.close();
    await app2.close();
    await h2.close();
  });
});
