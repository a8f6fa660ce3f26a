import { createHmac } from 'node:crypto';
import {
  createServer,
  get as httpGet,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/api/webhooks.js';
import { ADMIN_TOKEN, emitCall, startHarness, type Harness } from './api-harness.js';

let h: Harness | null = null;
let hook: Server | null = null;

/** A webhook receiver on 127.0.0.1 (closed after each test); `onRequest` gets each request's whole body. */
async function listenHook(
  onRequest: (req: IncomingMessage, body: string, res: ServerResponse) => void,
): Promise<string> {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => onRequest(req, body, res));
  });
  await new Promise<void>((r) => hook!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
}
afterEach(async () => {
  await h?.close();
  h = null;
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  hook = null;
});

describe('real listen', () => {
  it('serves health, metrics and the OpenAPI document over TCP on 127.0.0.1', async () => {
    h = await startHarness();
    const addr = await h.app.listen({ host: '127.0.0.1', port: 0 });
    const health = await fetch(`${addr}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const doc = (await (await fetch(`${addr}/docs/json`)).json()) as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    expect(doc.paths['/api/auth/login']!.post!.security).toEqual([]);
    expect(doc.paths['/health']!.get!.security).toEqual([]);
    expect(doc.paths['/api/calls']!.get!.security).toBeUndefined(); // the global bearer requirement applies
    for (const p of [
      '/api/calls',
      '/api/calls/{id}',
      '/api/policy/rules',
      '/api/lists/{kind}',
      '/api/tuning',
      '/api/tokens',
      '/metrics',
      '/health',
    ]) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    expect((await fetch(`${addr}/docs`)).status).toBeLessThan(400);

    const before = await (await fetch(`${addr}/metrics`)).text();
    const count = (text: string, line: string) =>
      Number(new RegExp(`^${line.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    emitCall(h.bus, { scores: [5], verdict: 'synthetic', actions: ['drop'] });
    const after = await (await fetch(`${addr}/metrics`)).text();
    expect(
      count(after, 'voiceguard_verdicts_total{verdict="synthetic"}') -
        count(before, 'voiceguard_verdicts_total{verdict="synthetic"}'),
    ).toBe(1);
    expect(
      count(after, 'voiceguard_actions_total{action="drop"}') -
        count(before, 'voiceguard_actions_total{action="drop"}'),
    ).toBe(1);
    expect(
      count(after, 'voiceguard_calls_answered_total{codec="pcmu"}') -
        count(before, 'voiceguard_calls_answered_total{codec="pcmu"}'),
    ).toBe(1);
    expect(
      count(after, 'voiceguard_decision_latency_ms_count') -
        count(before, 'voiceguard_decision_latency_ms_count'),
    ).toBe(1);
    for (const name of [
      'voiceguard_inference_latency_ms_bucket',
      'voiceguard_rtp_packets_relayed_total',
      'voiceguard_sip_responses_total',
      'voiceguard_process_cpu_user_seconds_total',
    ]) {
      expect(after).toContain(`# TYPE ${name.replace(/_bucket$/, '')}`);
    }
  });

  it('streams bus events over SSE to a client authenticated by ?token=', async () => {
    h = await startHarness();
    const addr = (await h.app.listen({ host: '127.0.0.1', port: 0 })).replace('http://', '');
    const [host, port] = addr.split(':');
    const refused = await new Promise<number>((resolve) =>
      httpGet({ host, port, path: '/api/events?token=wrong' }, (res) => resolve(res.statusCode ?? 0)),
    );
    expect(refused).toBe(401);
    const listenersBefore = h.bus.listenerCount('call.score');
    const res = await new Promise<IncomingMessage>((resolve) =>
      httpGet({ host, port, path: `/api/events?token=${ADMIN_TOKEN}` }, resolve),
    );
    expect(h.bus.listenerCount('call.score')).toBe(listenersBefore + 1);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    let text = '';
    const got = new Promise<void>((resolve) => {
      res.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('event: call.ended')) resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    const id = emitCall(h.bus, { scores: [1.5], verdict: 'human' });
    await got;
    res.destroy();
    const events = text
      .split('\n\n')
      .filter((b) => b.startsWith('event:'))
      .map((b) => ({
        name: /^event: (\S+)/.exec(b)![1],
        data: JSON.parse(/\ndata: (.*)$/s.exec(b)![1]!) as { callId: string },
      }));
    expect(events.map((e) => e.name)).toEqual([
      'call.started',
      'call.answered',
      'call.score',
      'call.verdict',
      'call.ended',
    ]);
    expect(events.every((e) => e.data.callId === id)).toBe(true);
    // the listener is released when the client goes away
    await new Promise((r) => setTimeout(r, 100));
    expect(h.bus.listenerCount('call.score')).toBe(listenersBefore);
  });

  it("a delayed offer's rule chosen at the answer reaches the SSE stream, the live list and the call's record", async () => {
    h = await startHarness();
    const addr = (await h.app.listen({ host: '127.0.0.1', port: 0 })).replace('http://', '');
    const [host, port] = addr.split(':');
    const res = await new Promise<IncomingMessage>((resolve) =>
      httpGet({ host, port, path: `/api/events?token=${ADMIN_TOKEN}` }, resolve),
    );
    let text = '';
    // Until call.rule comes, or 3 s: the assertions below say what was missing.
    const got = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 3000);
      res.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('event: call.rule')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    const ruleChanges = async () =>
      Number(
        /^voiceguard_calls_rule_by_codec_total\{treatment="allow"\} (\S+)$/m.exec(
          (await h!.app.inject({ url: '/metrics' })).body,
        )?.[1] ?? 0,
      );
    const before = await ruleChanges();
    const callId = 'delayed-offer-1';
    const atMs = Date.now();
    h.bus.emit('call.started', {
      callId,
      atMs,
      direction: 'inbound',
      trunk: 'default',
      sourceAddress: '192.0.2.10',
      fromNumber: '+4930111222',
      toNumber: '+4989333444',
      sipCallId: `${callId}@test`,
      ruleId: null,
      treatment: 'analyse',
    });
    h.bus.emit('call.rule', {
      callId,
      atMs: atMs + 900,
      ruleId: 'g729-pass',
      treatment: 'allow',
      codec: 'g729',
    });
    h.bus.emit('call.answered', { callId, atMs: atMs + 800, codec: 'g729' });
    await got;
    res.destroy();
    expect(text).toMatch(/event: call\.rule\ndata: \{[^\n]*"ruleId":"g729-pass"[^\n]*\n/);
    expect((await ruleChanges()) - before).toBe(1);
    const live = await h.app.inject({ url: '/api/calls/live', headers: h.admin });
    expect((live.json() as { items: unknown[] }).items).toMatchObject([
      { id: callId, ruleId: 'g729-pass', treatment: 'allow', codec: 'g729' },
    ]);
    h.bus.emit('call.ended', { callId, atMs: atMs + 5000, reason: 'bye-caller', sipStatus: null });
    h.store.flush();
    const stored = await h.app.inject({ url: `/api/calls/${callId}`, headers: h.admin });
    expect((stored.json() as { call: unknown }).call).toMatchObject({
      ruleId: 'g729-pass',
      treatment: 'allow',
      codec: 'g729',
      answeredAtMs: atMs + 800,
    });
  });
});

describe('webhooks', () => {
  it('signs, retries with backoff after failures, and delivers without blocking the bus', async () => {
    const received: { attempt: number; headers: IncomingMessage['headers']; body: string; atMs: number }[] =
      [];
    let attempts = 0;
    const url = `${await listenHook((req, body, res) => {
      attempts++;
      received.push({ attempt: attempts, headers: req.headers, body, atMs: Date.now() });
      // the first two attempts fail: one 500, one dropped connection
      if (attempts === 1) res.writeHead(500).end('boom');
      else if (attempts === 2) req.socket.destroy();
      else res.writeHead(204).end();
    })}/hook`;
    h = await startHarness({
      api: {
        bootstrapAdminToken: ADMIN_TOKEN,
        webhooks: [{ url, secret: 'hook-secret-1', events: ['verdict'] }],
        webhookBackoffMs: 50,
        webhookMaxAttempts: 5,
      },
    });
    const t0 = performance.now();
    const id = emitCall(h.bus, { scores: [9], verdict: 'synthetic', actions: ['drop'] });
    expect(performance.now() - t0).toBeLessThan(50); // emitting never waits for HTTP
    const end = Date.now() + 10_000;
    while (received.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // no further attempts after success
    expect(received).toHaveLength(3);
    // all three are the same delivery; only the verdict was subscribed (no action event)
    const bodies = new Set(received.map((r) => r.body));
    expect(bodies.size).toBe(1);
    const body = JSON.parse(received[0]!.body) as { type: string; data: { callId: string; verdict: string } };
    expect(body).toMatchObject({ type: 'call.verdict', data: { callId: id, verdict: 'synthetic' } });
    expect(new Set(received.map((r) => r.headers['x-voiceguard-delivery'])).size).toBe(1);
    for (const r of received) {
      const ts = r.headers['x-voiceguard-timestamp'] as string;
      const expected =
        'sha256=' + createHmac('sha256', 'hook-secret-1').update(`${ts}.${r.body}`).digest('hex');
      expect(r.headers['x-voiceguard-signature']).toBe(expected);
      expect(signWebhook('hook-secret-1', Number(ts), r.body)).toBe(expected);
    }
    // exponential backoff: ~50 ms then ~100 ms
    const gap1 = received[1]!.atMs - received[0]!.atMs;
    const gap2 = received[2]!.atMs - received[1]!.atMs;
    expect(gap1).toBeGreaterThanOrEqual(45);
    expect(gap2).toBeGreaterThanOrEqual(95);
  });

  it('gives up after webhookMaxAttempts', async () => {
    let attempts = 0;
    hook = createServer((_req, res) => {
      attempts++;
      res.writeHead(503).end();
    });
    await new Promise<void>((r) => hook!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`;
    h = await startHarness({
      api: {
        bootstrapAdminToken: ADMIN_TOKEN,
        webhooks: [{ url, secret: 'hook-secret-1' }],
        webhookBackoffMs: 10,
        webhookMaxAttempts: 3,
      },
    });
    h.bus.emit('call.action', { callId: 'c1', atMs: Date.now(), action: 'warn', reason: 'test' });
    // Wait for the third attempt by count (a loaded machine only makes it later), then long enough for a
    // fourth to have come at 40 ms of back-off, had there been one.
    const end = Date.now() + 10_000;
    while (attempts < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 400));
    expect(attempts).toBe(3);
  });
});

describe('webhooks: repeated audio', () => {
  it("delivers call.repeat to a webhook that lists 'repeat', and not to one with the default events", async () => {
    const got: { path: string; body: string }[] = [];
    const base = await listenHook((req, body, res) => {
      got.push({ path: req.url ?? '', body });
      res.writeHead(204).end();
    });
    h = await startHarness({
      api: {
        bootstrapAdminToken: ADMIN_TOKEN,
        webhooks: [
          { url: `${base}/repeats`, secret: 'hook-secret-1', events: ['repeat'] },
          { url: `${base}/default`, secret: 'hook-secret-1' },
        ],
      },
    });
    const repeat = {
      callId: 'c9',
      atMs: Date.now(),
      matchedCalls: 2,
      otherCallers: 2,
      firstCallId: 'c1',
      bitErrorRate: 0.1,
    };
    h.bus.emit('call.repeat', repeat);
    const end = Date.now() + 5000;
    while (got.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(got.map((g) => g.path)).toEqual(['/repeats']);
    expect(JSON.parse(got[0]!.body)).toMatchObject({ type: 'call.repeat', data: repeat });
  });
});

describe('erasures', () => {
  it("tells a webhook that lists 'erasure', and SSE clients, which calls were erased; not a default webhook", async () => {
    const got: { path: string; body: string; headers: IncomingMessage['headers'] }[] = [];
    const base = await listenHook((req, body, res) => {
      got.push({ path: req.url ?? '', body, headers: req.headers });
      res.writeHead(204).end();
    });
    h = await startHarness({
      api: {
        bootstrapAdminToken: ADMIN_TOKEN,
        webhooks: [
          { url: `${base}/erasures`, secret: 'hook-secret-1', events: ['verdict', 'erasure'] },
          { url: `${base}/default`, secret: 'hook-secret-1' },
        ],
      },
    });
    const addr = (await h.app.listen({ host: '127.0.0.1', port: 0 })).replace('http://', '');
    const [host, port] = addr.split(':');
    const sse = await new Promise<IncomingMessage>((resolve) =>
      httpGet({ host, port, path: `/api/events?token=${ADMIN_TOKEN}` }, resolve),
    );
    let text = '';
    const erasedOnSse = new Promise<void>((resolve) => {
      sse.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('event: calls.erased')) resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    const id = emitCall(h.bus, { from: '+4930111222' });
    const kept = emitCall(h.bus, { from: '+4930999888' });
    h.store.flush();
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h.admin,
      payload: { number: '+4930111222' },
    });
    expect(res.json()).toMatchObject({ calls: 1 });
    await erasedOnSse;
    sse.destroy();
    const block = text.split('\n\n').find((b) => b.startsWith('event: calls.erased'))!;
    expect(JSON.parse(/\ndata: (.*)$/s.exec(block)![1]!)).toMatchObject({ callIds: [id] });

    const end = Date.now() + 5000;
    while (got.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // time for a delivery to the default webhook, had there been one
    expect(got.map((g) => g.path)).toEqual(['/erasures']);
    const body = JSON.parse(got[0]!.body) as { type: string; data: { callIds: string[] } };
    expect(body).toMatchObject({ type: 'calls.erased', data: { callIds: [id] } });
    expect(body.data.callIds).not.toContain(kept);
    expect(got[0]!.headers['x-voiceguard-event']).toBe('calls.erased');
    const ts = Number(got[0]!.headers['x-voiceguard-timestamp']);
    expect(got[0]!.headers['x-voiceguard-signature']).toBe(signWebhook('hook-secret-1', ts, got[0]!.body));
  });
});

describe('TLS', () => {
  it('serves HTTPS with config.api.tls', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { request } = await import('node:https');
    const dir = mkdtempSync(join(tmpdir(), 'vg-tls-'));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    h = await startHarness({ api: { bootstrapAdminToken: ADMIN_TOKEN, tls: { certFile, keyFile } } });
    const addr = await h.app.listen({ host: '127.0.0.1', port: 0 });
    expect(addr.startsWith('https://')).toBe(true);
    const port = Number(new URL(addr).port);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/health',
          ca: readFileSync(certFile),
          servername: 'localhost',
          checkServerIdentity: () => undefined,
        },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body)).toMatchObject({ status: 'ok' });
  });
});
