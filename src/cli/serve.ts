import type { Command } from 'commander';
import { createMediaRelay } from '../media/media-relay.js';
import { CallEventBus } from '../call-events.js';
import { ConfigError, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { DetectorEngine } from '../detect/engine.js';
import { loadModelMetadata, type ModelMetadata } from '../detect/model-metadata.js';
import { loadAudioFile, to8k } from '../audio/load-audio.js';
import { loadSipTls } from '../sip/tls-files.js';
import { Gateway } from '../gateway.js';
import type { MediaRelayLike } from '../gateway-types.js';
import { createLogger, type Logger } from '../log.js';
import { PolicyService } from '../policy/policy-service.js';
import { Store } from '../store/store.js';
import { createApiServer } from '../api/server.js';
import { inferenceLatency, observeGateway } from '../api/metrics.js';
import { listenProblem } from '../listen-problem.js';

/**
 * An announcement WAV (any rate/format src/audio reads) as 8 kHz samples. A file that cannot be read
 * is a start-up error naming the file: the admin configured it, so silently beeping instead would hide it.
 */
async function loadAnnouncement(
  file: string | null,
  kind: 'warn' | 'drop',
  logger: Logger,
): Promise<Float32Array | null> {
  if (!file) return null;
  let samples: Float32Array;
  try {
    samples = to8k(await loadAudioFile(file));
  } catch (err) {
    throw new ConfigError(`actions.${kind}Announcement: cannot read ${file}: ${(err as Error).message}`);
  }
  logger.info(
    { event: 'actions.announcement_loaded', kind, file, ms: Math.round(samples.length / 8) },
    `${kind} announcement loaded`,
  );
  return samples;
}

/** Thresholds that let the policy validate while no model (and so no analysis) is running. */
const UNUSED_THRESHOLDS = { dropLlr: 3, warnLlr: 1.5, humanLlr: -3, maxListenMs: 6000, evidenceWeight: 0.5 };

/**
 * `voiceguard serve`: builds the whole gateway from the configuration, in one place - logger,
 * store, policy, detector engine, media relay, SIP gateway, admin API - and runs it until
 * SIGTERM/SIGINT (drain, then exit 0). SIGHUP re-reads the config file for new calls.
 */
export interface ServeOptions {
  config?: string;
  checkConfig?: boolean;
}

export interface RunningServer {
  gateway: Gateway;
  policy: PolicyService;
  config: Config;
  apiPort: number;
  /** The store's keyed pseudonym of a number: what logs and `p:` list entries use. */
  pseudonym(n: string): string;
  stop(): Promise<void>;
  reload(): void;
}

async function createRelay(config: Config, logger: Logger): Promise<MediaRelayLike> {
  return createMediaRelay(config.media, logger.child({ layer: 'media' }));
}

export interface StartOptions {
  file?: string | null;
  env?: NodeJS.ProcessEnv;
  /** Dotted config keys over file and env (tests: ports, paths). */
  overrides?: Record<string, unknown>;
  /** A logger to use instead of the JSON-lines stdout logger (tests read the events). */
  logger?: Logger;
}

export async function startServer(opts: StartOptions = {}): Promise<RunningServer> {
  const file = opts.file ?? null;
  const env = opts.env ?? process.env;
  const overrides = opts.overrides ?? {};
  const loaded = loadConfig(file, env, overrides);
  let config = loaded.config;
  const logger = opts.logger ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  logger.info({ event: 'config.loaded', file: loaded.file ?? '(defaults)' }, 'configuration loaded');
  // Announcements first: a missing file stops start-up before anything is opened.
  const warnAnnouncement = await loadAnnouncement(config.actions.warnAnnouncement, 'warn', logger);
  const dropAnnouncement = await loadAnnouncement(config.actions.dropAnnouncement, 'drop', logger);
  // So do SIP over TLS files that cannot be read or do not go together (the gateway reads them again).
  loadSipTls(config.sip);
  const bus = new CallEventBus();
  const store = Store.open({ ...config.store, privacy: config.privacy }, logger.child({ layer: 'store' }));
  store.subscribe(bus);
  let engine: DetectorEngine | null = null;
  let modelDecision: ModelMetadata['decision'] | null = null;
  try {
    engine = await DetectorEngine.create({
      ...config.detector,
      logger: logger.child({ layer: 'detect' }),
      onWindowLatencyMs: (ms) => inferenceLatency.observe(ms),
    });
    modelDecision = engine.metadata.decision;
  } catch (err) {
    // Fail open: without a model the gateway still relays calls, unanalysed, and says so.
    logger.error(
      { event: 'detector.unavailable', err: (err as Error).message },
      'detector not loaded: calls pass unanalysed',
    );
    // The policy still needs thresholds to validate (they apply once a model is back): the
    // metadata's if it is readable, else placeholders that nothing uses while no model runs.
    try {
      modelDecision = loadModelMetadata(config.detector.metadataPath).decision;
    } catch {
      modelDecision = { ...UNUSED_THRESHOLDS };
    }
  }
  const policy = new PolicyService({
    config: config.policy,
    store,
    modelDecision,
    logger: logger.child({ layer: 'policy' }),
  });
  if (config.policy.rulesFile) {
    policy.seedRulesFile(config.policy.rulesFile);
    if (config.policy.watchRulesFile) policy.watchRulesFile();
  }
  const relay = await createRelay(config, logger);
  const gateway = new Gateway({
    config,
    logger,
    bus,
    policy,
    engine,
    relay,
    warnAnnouncement,
    dropAnnouncement,
    pseudonym: (n) => store.pseudonym(n),
    callerHistory: (n, sinceMs, minTalkMs) => store.callerHistory(n, sinceMs, minTalkMs),
    repeatStore: store,
  });
  // Closes what start-up opened, in this order: by stop(), and when a listener cannot start
  // (tests and `doctor` run on). The API and its metrics observer once they exist.
  const closeAll = async (api?: { close(): Promise<unknown> }, unobserve?: () => void): Promise<void> => {
    await gateway.close();
    unobserve?.();
    await api?.close();
    await relay?.close();
    await engine?.close();
    policy.close();
    store.flush();
    await store.close(); // waits for the checkpoint worker to close its connection
  };
  try {
    await gateway.listen();
  } catch (err) {
    await closeAll();
    throw err;
  }
  const unobserve = observeGateway({
    media: () => gateway.mediaStats(),
    detector: () => gateway.detectorStats(),
    repeatCalls: () => gateway.repeatCalls(),
  });
  const api = await createApiServer({
    config,
    currentConfig: () => config,
    store,
    policy,
    bus,
    live: gateway.live,
    logger,
    forgetCalls: (ids) => gateway.forgetCalls(ids),
  });
  try {
    await api.listen({ host: config.api.host, port: config.api.port });
  } catch (err) {
    await closeAll(api, unobserve);
    const target = {
      what: 'admin API',
      host: config.api.host,
      port: config.api.port,
      transport: config.api.tls ? 'https' : 'http',
      portSetting: 'api.port',
      hostSetting: 'api.host',
    };
    throw new Error(listenProblem(target, err as NodeJS.ErrnoException));
  }
  const addr = api.server.address();
  const apiPort = typeof addr === 'object' && addr ? addr.port : config.api.port;
  logger.info({ event: 'api.listening', host: config.api.host, port: apiPort }, 'admin API listening');
  let stopped = false;
  return {
    gateway,
    policy,
    get config() {
      return config;
    },
    apiPort,
    pseudonym: (n) => store.pseudonym(n),
    reload() {
      try {
        const next = loadConfig(file, env, overrides).config;
        config = next;
        logger.level = next.log.level;
        gateway.setConfig(next);
        if (next.policy.rulesFile) policy.reloadRulesFile();
        logger.info({ event: 'config.reloaded' }, 'configuration reloaded; new calls use it');
      } catch (err) {
        logger.error(
          { event: 'config.reload_failed', err: (err as Error).message },
          'config reload failed; keeping the running configuration',
        );
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await gateway.drain(config.sip.drainTimeoutMs);
      await closeAll(api, unobserve);
      logger.info({ event: 'gateway.stopped' }, 'stopped');
    },
  };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the gateway: SIP B2BUA between trunk and PBX, media relay, detector, admin API')
    .option(
      '-c, --config <file>',
      'configuration file (YAML); default voiceguard.yaml or /etc/voiceguard/voiceguard.yaml',
    )
    .option(
      '--check-config',
      'validate the configuration and the model metadata, then exit (0 ok, 2 invalid)',
    )
    .action(async (opts: ServeOptions) => {
      if (opts.checkConfig) {
        try {
          const { config, file } = loadConfig(opts.config ?? null);
          loadModelMetadata(config.detector.metadataPath);
          process.stdout.write(`configuration ${file ?? '(defaults)'} and model metadata are valid\n`);
          process.exit(0);
        } catch (err) {
          process.stderr.write(`voiceguard: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exit(2);
        }
      }
      let server: RunningServer;
      try {
        server = await startServer({ file: opts.config ?? null });
      } catch (err) {
        process.stderr.write(`voiceguard: ${(err as Error).message}\n`);
        process.exit(err instanceof ConfigError ? 2 : 1);
      }
      process.on('SIGHUP', () => server.reload());
      const shutdown = (): void => {
        server.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            process.stderr.write(`voiceguard: shutdown failed: ${(err as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', shutdown);
      process.once('SIGINT', shutdown);
    });
}
