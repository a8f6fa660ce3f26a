import type {} from '@fastify/rate-limit';
import type {} from '@fastify/swagger';
import type { CallEventBus } from '../call-events.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { Store } from '../store/store.js';
import type { LiveCallSource } from './live-calls.js';

/** What every route plugin receives as options. */
export interface ApiDeps {
  /** The configuration at start-up (what the server was built with). */
  config: Config;
  /** The configuration in force now: SIGHUP reloads replace it (policy.knownCallers, say). */
  currentConfig: () => Config;
  store: Store;
  policy: PolicyService;
  bus: CallEventBus;
  live: LiveCallSource;
  logger: Logger;
  /**
   * Erased calls leave the gateway's memory too (its repeated-audio index); returns how many
   * calls it still held. Absent when the API runs without a gateway.
   */
  forgetCalls?: (callIds: readonly string[]) => number;
}

/** Epoch ms or ISO 8601 → ms; undefined passes through. */
export function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const ms = /^-?\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new TimeParamError(field, value);
  return ms;
}

export class TimeParamError extends Error {
  readonly statusCode = 400;
  constructor(
    readonly field: string,
    value: string,
  ) {
    super(`${field}: '${value}' is neither epoch milliseconds nor an ISO 8601 date-time`);
    this.name = 'TimeParamError';
  }
}
