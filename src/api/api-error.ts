import type { FastifyError, FastifyInstance } from 'fastify';
import { PolicyConflictError, PolicyNotFoundError } from '../policy/policy-service.js';
import { PolicyValidationError } from '../policy/policy-types.js';
import { InvalidCursorError } from '../store/store.js';

/** An error with an HTTP status and, for bad input, the offending field. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
};

interface AjvIssue {
  keyword?: string;
  parentSchema?: { description?: string };
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `body/thresholds/dropLlr` + missing/extra property → `thresholds.dropLlr`. */
function ajvField(v: AjvIssue, context: string | undefined): string {
  const parts = (v.instancePath ?? '').split('/').filter(Boolean);
  if (typeof v.params?.missingProperty === 'string') parts.push(v.params.missingProperty);
  if (typeof v.params?.additionalProperty === 'string') parts.push(v.params.additionalProperty);
  const path = parts.join('.');
  return context === 'body' ? path : [context, path].filter(Boolean).join('.');
}

function ajvMessage(v: AjvIssue, field: string): string {
  let msg = v.message ?? 'is invalid';
  if (Array.isArray(v.params?.allowedValues))
    msg += `; allowed values: ${v.params.allowedValues.map((x) => JSON.stringify(x)).join(', ')}`;
  if (typeof v.params?.additionalProperty === 'string') msg = 'unknown key';
  // A bare regular expression helps nobody: add what the field is (ajv `verbose` gives the schema).
  if (v.keyword === 'pattern' && v.parentSchema?.description) msg += ` (${v.parentSchema.description})`;
  return `${field || '(body)'}: ${msg}`;
}

const isAnyOfNoise = (v: AjvIssue) =>
  v.keyword === 'anyOf' || (v.keyword === 'type' && v.params?.type === 'null');

/**
 * A nullable field (`anyOf: [integer, null]`) fails as three issues: the real one, "must be
 * null" and "must match a schema in anyOf". Per field, keep only the real one, so the console
 * can show it next to the input.
 */
function withoutAnyOfNoise(list: AjvIssue[]): AjvIssue[] {
  return list.filter(
    (v) => !isAnyOfNoise(v) || list.every((o) => o.instancePath !== v.instancePath || isAnyOfNoise(o)),
  );
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const send = (statusCode: number, message: string, extra: Record<string, unknown> = {}) =>
      reply.status(statusCode).send({ statusCode, error: REASONS[statusCode] ?? 'Error', message, ...extra });
    if (err.validation) {
      const issues = withoutAnyOfNoise(err.validation as AjvIssue[]).map((v) => {
        const field = ajvField(v, err.validationContext);
        return { field, message: ajvMessage(v, field) };
      });
      return send(400, issues.map((i) => i.message).join('; '), { field: issues[0]?.field ?? '', issues });
    }
    if (err instanceof PolicyValidationError) {
      return send(400, err.message, { field: err.field, issues: err.issues });
    }
    if (err instanceof InvalidCursorError) return send(400, err.message, { field: 'cursor' });
    if (err instanceof PolicyNotFoundError) return send(404, err.message);
    if (err instanceof PolicyConflictError) return send(409, err.message);
    if (err instanceof ApiError)
      return send(err.statusCode, err.message, err.field ? { field: err.field } : {});
    const status =
      typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
        ? err.statusCode
        : 500;
    if (status === 500) {
      request.log.error({ event: 'api.internal_error', err }, 'request failed');
      return send(500, 'internal error; see the voiceguard log');
    }
    const field = (err as { field?: unknown }).field;
    return send(status, err.message, typeof field === 'string' ? { field } : {});
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: `no route ${request.method} ${request.url.split('?')[0]}`,
    });
  });
}
