import pino, { type Logger } from 'pino';
import { Writable } from 'node:stream';

/** A real pino logger whose JSON lines the test reads back, parsed, in `lines`. */
export function captureLogger(level: pino.Level = 'info'): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  return { logger, lines };
}
