import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  pretty?: boolean;
}

/**
 * One root logger per process. Events carry a stable `event` field (`call.verdict`,
 * `rtp.latched`, `sip.parse_error`) so operators can alert on them; children bind `callId`.
 * Logs go to stdout as JSON lines (journald and container runtimes collect them as is).
 */
export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? process.env.VOICEGUARD_LOG_LEVEL ?? 'info';
  if (opts.pretty) {
    return pino({
      level,
      base: { svc: 'voiceguard' },
      transport: { target: 'pino-pretty', options: { destination: 2 } },
    });
  }
  return pino({ level, base: { svc: 'voiceguard' } });
}

/** A logger that discards everything, for pure-core tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
