import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from '../../src/api/server.js';
import { BusLiveCalls, type TrunkRegistration } from '../../src/api/live-calls.js';
import { CallEventBus } from '../../src/call-events.js';
import { validateConfig } from '../../src/config/load-config.js';
import type { Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { Store } from '../../src/store/store.js';

export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
export const MODEL_DECISION = {
  dropLlr: 8,
  warnLlr: 4,
  humanLlr: -6,
  maxListenMs: 10_000,
  byCodec: { g729: { dropLlr: 12, warnLlr: 6, humanLlr: -12 } },
};

export interface Harness {
  app: FastifyInstance;
  store: Store;
  policy: PolicyService;
  bus: CallEventBus;
  config: Config;
  dir: string;
  viewerToken: string;
  admin: Record<string, string>;
  viewer: Record<string, string>;
  close(): Promise<void>;
}

/** A real fastify app over a real SQLite file in a temp dir. */
export async function startHarness(
  overrides: Record<string, unknown> = {},
  extra: {
    registrations?: () => TrunkRegistration[];
    /** What the gateway would do with erased calls (Gateway.forgetCalls). */
    forgetCalls?: (callIds: readonly string[]) => number;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-api-'));
  const raw: Record<string, unknown> = {
    ...overrides,
    store: { path: join(dir, 'vg.sqlite'), flushIntervalMs: 20, ...(overrides.store as object | undefined) },
    api: { bootstrapAdminToken: ADMIN_TOKEN, ...(overrides.api as object | undefined) },
  };
  const config = validateConfig(raw);
  const store = Store.open({ ...config.store, privacy: config.privacy }, silentLogger);
  const policy = new PolicyService({
    config: config.policy,
    store,
    modelDecision: MODEL_DECISION,
    logger: silentLogger,
  });
  const bus = new CallEventBus();
  store.subscribe(bus);
  // With trunk registrations to show, the live source is built here (as the gateway's would be).
  const live = extra.registrations
    ? Object.assign(new BusLiveCalls(bus, null), { registrations: extra.registrations })
    : undefined;
  const app = await createApiServer({
    config,
    store,
    policy,
    bus,
    logger: silentLogger,
    ...(live ? { live } : {}),
    ...(extra.forgetCalls ? { forgetCalls: extra.forgetCalls } : {}),
  });
  await app.ready();
  const { token: viewerToken } = store.createToken('viewer-1', 'viewer', 'test');
  return {
    app,
    store,
    policy,
    bus,
    config,
    dir,
    viewerToken,
    admin: { authorization: `Bearer ${ADMIN_TOKEN}` },
    viewer: { authorization: `Bearer ${viewerToken}` },
    async close() {
      await app.close();
      live?.close();
      policy.close();
      await store.close(); // settles once the checkpoint worker has closed its connection too
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
/** Emits the story of one finished call on the bus. */
export function emitCall(
  bus: CallEventBus,
  o: {
    atMs?: number;
    from?: string;
    to?: string;
    scores?: number[];
    verdict?: 'synthetic' | 'human' | 'unsure' | null;
    actions?: ('drop' | 'warn' | 'log')[];
    callId?: string;
    /** Caller-audio ms of the decision (default 3000). */
    decisionMs?: number;
    /** The caller's codec (default PCMU). */
    codec?: string;
  } = {},
): string {
  const callId = o.callId ?? `call-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
  const atMs = o.atMs ?? Date.now();
  bus.emit('call.started', {
    callId,
    atMs,
    direction: 'inbound',
    trunk: 'default',
    sourceAddress: '192.0.2.10',
    fromNumber: o.from ?? '+4930111222',
    toNumber: o.to ?? '+4989333444',
    sipCallId: `${callId}@test`,
    ruleId: null,
    treatment: 'analyse',
  });
  bus.emit('call.answered', { callId, atMs: atMs + 1000, codec: o.codec ?? 'PCMU' });
  let cum = 0;
  (o.scores ?? []).forEach((llr, i) => {
    cum += llr;
    bus.emit('call.score', {
      callId,
      atMs: atMs + 1500 + i * 500,
      tMs: 1500 + i * 500,
      llr,
      cumulativeLlr: cum,
    });
  });
  if (o.verdict)
    bus.emit('call.verdict', {
      callId,
      atMs: atMs + 5000,
      verdict: o.verdict,
      decisionMs: o.decisionMs ?? 3000,
      cumulativeLlr: cum,
    });
  for (const a of o.actions ?? [])
    bus.emit('call.action', { callId, atMs: atMs + 5001, action: a, reason: `test ${a}` });
  bus.emit('call.ended', { callId, atMs: atMs + 20_000, reason: 'bye-caller', sipStatus: null });
  return callId;
}
