import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { CallEventBus } from '../call-events.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { Store } from '../store/store.js';
import { installErrorHandler } from './api-error.js';
import { consolePlugin } from './console-plugin.js';
import type { ApiDeps } from './api-deps.js';
import { bootstrapAdmin, installAuth, requiredLevel, type AuthLevel } from './token-auth.js';
import { BusLiveCalls, type LiveCallSource } from './live-calls.js';
import { observeCallEvents } from './metrics.js';
import { auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { callsRoutes } from './routes/calls.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { erasureRoutes } from './routes/erasure.js';
import { labelsRoutes } from './routes/labels.js';
import { listsRoutes } from './routes/lists.js';
import { liveRoutes } from './routes/live.js';
import { metricsRoutes } from './routes/metrics.js';
import { policyRoutes } from './routes/policy.js';
import { statsRoutes } from './routes/stats.js';
import { tokensRoutes } from './routes/tokens.js';
import { tuningRoutes } from './routes/tuning.js';
import { ErrorSchema } from './schemas.js';
import { WebhookDispatcher } from './webhooks.js';

/** One registered route, as the authorization test and the docs enumerate them. */
export interface RouteInfo {
  method: string;
  url: string;
  auth: AuthLevel;
  hasResponseSchema: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered on this server (filled as plugins register). */
    routeTable: RouteInfo[];
  }
}

export interface ApiServerOptions {
  config: Config;
  store: Store;
  policy: PolicyService;
  bus: CallEventBus;
  /** The gateway's live-call registry; when left out, one is kept from the bus. */
  live?: LiveCallSource;
  logger: Logger;
  /** The configuration in force now (after SIGHUP reloads); default: `config`. */
  currentConfig?: () => Config;
  /** Erased calls leave the gateway's memory too (Gateway.forgetCalls). */
  forgetCalls?: (callIds: readonly string[]) => number;
}

/**
 * Builds the admin API and console (not listening: the caller listens on config.api.host/port).
 * Also subscribes metrics and webhooks to the bus; both are released by app.close().
 */
export async function createApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const { config, store, bus, logger } = opts;
  const tls = config.api.tls;
  const app = Fastify({
    loggerInstance: logger.child({ component: 'api' }),
    // Per-request lines would drown the call logs; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: false,
    bodyLimit: 1_048_576,
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
        allErrors: false,
        verbose: true,
      },
    },
    ...(tls ? { https: { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } } : {}),
  }) as unknown as FastifyInstance;

  let ownLive: BusLiveCalls | null = null;
  const live =
    opts.live ??
    (ownLive = new BusLiveCalls(bus, config.privacy.storeClearNumbers ? null : (n) => store.pseudonym(n)));
  const deps: ApiDeps = {
    config,
    currentConfig: opts.currentConfig ?? (() => config),
    store,
    policy: opts.policy,
    bus,
    live,
    logger,
    ...(opts.forgetCalls ? { forgetCalls: opts.forgetCalls } : {}),
  };

  const routeTable: RouteInfo[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routeTable.push({
        method,
        url: route.url,
        auth: route.url.startsWith('/api/') ? requiredLevel(method, route.config?.auth) : 'public',
        hasResponseSchema: route.schema?.response !== undefined,
      });
    }
  });

  bootstrapAdmin(store, config.api.bootstrapAdminToken, logger);
  installErrorHandler(app);
  installAuth(app, store);
  app.addSchema(ErrorSchema);

  await app.register(rateLimit, { global: false });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'voiceguard admin API',
        version: '1',
        description: 'Calls, policy, lists, labels, tuning, tokens and audit of a voiceguard gateway',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // One plugin per resource.
  for (const plugin of [
    healthRoutes,
    metricsRoutes,
    authRoutes,
    callsRoutes,
    liveRoutes,
    labelsRoutes,
    erasureRoutes,
    policyRoutes,
    listsRoutes,
    statsRoutes,
    tuningRoutes,
    eventsRoutes,
    tokensRoutes,
    auditRoutes,
  ]) {
    await app.register(plugin, deps);
  }
  await app.register(consolePlugin);

  const unobserve = observeCallEvents(bus);
  const webhooks = new WebhookDispatcher({
    webhooks: config.api.webhooks,
    maxAttempts: config.api.webhookMaxAttempts,
    backoffMs: config.api.webhookBackoffMs,
    timeoutMs: config.api.webhookTimeoutMs,
    maxQueued: config.api.webhookMaxQueued,
    logger: logger.child({ component: 'webhooks' }),
  });
  webhooks.subscribe(bus);
  app.addHook('onClose', async () => {
    unobserve();
    webhooks.close();
    ownLive?.close();
  });
  return app;
}
