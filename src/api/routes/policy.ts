import type { FastifyPluginAsync } from 'fastify';
import { knownCallerPolicy } from '../../policy/known-callers.js';
import { parseTime, type ApiDeps } from '../api-deps.js';
import {
  DefaultsInputJson,
  DefaultsJson,
  errors,
  idParam,
  RuleInputJson,
  RuleJson,
  timeParam,
} from '../schemas.js';

/** Policy rules CRUD and the defaults; every change applies to new calls at once. */
export const policyRoutes: FastifyPluginAsync<ApiDeps> = async (app, { policy, store, currentConfig }) => {
  const idParams = { type: 'object', properties: { id: idParam }, required: ['id'] };

  app.get(
    '/api/policy/rules',
    {
      schema: {
        tags: ['policy'],
        summary: 'Rules in evaluation order (priority, then id)',
        response: {
          200: {
            type: 'object',
            properties: {
              version: { type: 'integer' },
              timeZone: { type: 'string' },
              items: { type: 'array', items: RuleJson },
            },
            required: ['version', 'timeZone', 'items'],
          },
          ...errors(401),
        },
      },
    },
    async () => {
      const s = policy.current();
      return { version: s.version, timeZone: s.timeZone, items: s.rules };
    },
  );

  app.post<{ Body: unknown }>(
    '/api/policy/rules',
    {
      schema: {
        tags: ['policy'],
        summary: 'Create a rule',
        body: RuleInputJson,
        response: { 201: RuleJson, ...errors(400, 401, 403, 409) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(policy.createRule(request.body, request.principal!.name)),
  );

  app.get<{ Params: { id: string } }>(
    '/api/policy/rules/:id',
    {
      schema: {
        tags: ['policy'],
        summary: 'One rule',
        params: idParams,
        response: { 200: RuleJson, ...errors(401, 404) },
      },
    },
    async (request, reply) => {
      const rule = policy.current().rules.find((r) => r.id === request.params.id);
      if (!rule)
        return reply
          .status(404)
          .send({ statusCode: 404, error: 'Not Found', message: `rule '${request.params.id}' not found` });
      return rule;
    },
  );

  app.put<{ Params: { id: string }; Body: unknown }>(
    '/api/policy/rules/:id',
    {
      schema: {
        tags: ['policy'],
        summary: 'Replace a rule',
        params: idParams,
        body: RuleInputJson,
        response: { 200: RuleJson, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => policy.updateRule(request.params.id, request.body, request.principal!.name),
  );

  app.delete<{ Params: { id: string } }>(
    '/api/policy/rules/:id',
    {
      schema: {
        tags: ['policy'],
        summary: 'Delete a rule',
        params: idParams,
        response: { 204: { type: 'null' }, ...errors(401, 403, 404) },
      },
    },
    async (request, reply) => {
      policy.deleteRule(request.params.id, request.principal!.name);
      return reply.status(204).send();
    },
  );

  app.get<{
    Querystring: {
      fromNumber: string;
      toNumber: string;
      trunk?: string;
      sourceAddress?: string;
      at?: string;
    };
  }>(
    '/api/policy/evaluate',
    {
      schema: {
        tags: ['policy'],
        summary:
          'Dry run: the policy an inbound call with these facts would get now, known-caller cap included (no call is placed)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            fromNumber: { type: 'string', maxLength: 100 },
            toNumber: { type: 'string', maxLength: 100 },
            trunk: { type: 'string', maxLength: 100 },
            sourceAddress: { type: 'string', maxLength: 64 },
            at: timeParam,
          },
          required: ['fromNumber', 'toNumber'],
        },
        response: {
          200: {
            type: 'object',
            properties: {
              treatment: { type: 'string', enum: ['analyse', 'allow', 'deny'] },
              denyStatus: { type: ['integer', 'null'] },
              ruleId: { type: ['string', 'null'] },
              ruleName: { type: 'string' },
              thresholds: DefaultsJson.properties.thresholds,
              onSynthetic: { type: 'string' },
              onUnsure: { type: 'string' },
              onError: { type: 'string' },
              onRepeat: { type: 'string' },
              retainAudioSeconds: { type: 'integer' },
              maxAction: {
                type: 'string',
                enum: ['warn', 'log'],
                description: 'Known caller (policy.knownCallers): no action is stronger than this',
              },
              knownCaller: {
                type: 'object',
                properties: {
                  calls: { type: 'integer' },
                  humanLabels: { type: 'integer' },
                  lastCallId: { type: 'string' },
                },
                description:
                  'What made the caller known: earlier human calls, of them labelled human, the latest',
              },
              policyVersion: { type: 'integer' },
            },
            required: ['treatment', 'ruleId', 'ruleName', 'thresholds', 'policyVersion'],
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const atMs = parseTime(q.at, 'at') ?? Date.now();
      const evaluated = policy.evaluate({
        fromNumber: q.fromNumber,
        toNumber: q.toNumber,
        trunk: q.trunk ?? null,
        sourceAddress: q.sourceAddress ?? '',
        fromPseudonym: store.pseudonym(q.fromNumber),
        at: new Date(atMs),
      });
      return {
        ...knownCallerPolicy(
          evaluated,
          q.fromNumber,
          currentConfig().policy.knownCallers,
          (n, sinceMs, minTalkMs) => store.callerHistory(n, sinceMs, minTalkMs),
          atMs,
        ),
        policyVersion: policy.current().version,
      };
    },
  );

  const defaultsOut = {
    type: 'object',
    properties: {
      effective: DefaultsJson,
      override: DefaultsInputJson,
      timeZone: { type: 'string' },
      denyStatus: { type: 'integer' },
      version: { type: 'integer' },
      knownCallers: {
        type: 'object',
        description: 'policy.knownCallers from the configuration (read-only here; README "Known callers")',
        properties: {
          enabled: { type: 'boolean' },
          minCalls: { type: 'integer' },
          minTalkSeconds: { type: 'integer' },
          windowDays: { type: 'integer' },
          capAction: { type: 'string', enum: ['warn', 'log'] },
        },
      },
      repeat: {
        type: 'object',
        description:
          'detector.repeat from the configuration (read-only here; README "Repeated audio across callers")',
        properties: {
          enabled: { type: 'boolean' },
          listenMs: { type: 'integer' },
          minOtherCallers: { type: 'integer' },
          windowMinutes: { type: 'integer' },
          maxCalls: { type: 'integer' },
          maxBitErrorRate: { type: 'number' },
          persist: { type: 'boolean' },
        },
      },
    },
    required: ['effective', 'override', 'timeZone', 'denyStatus', 'version', 'knownCallers', 'repeat'],
  };
  const defaultsView = () => {
    const s = policy.current();
    return {
      ...policy.defaults(),
      timeZone: s.timeZone,
      denyStatus: s.denyStatus,
      version: s.version,
      knownCallers: currentConfig().policy.knownCallers,
      repeat: currentConfig().detector.repeat,
    };
  };

  app.get(
    '/api/policy/defaults',
    {
      schema: {
        tags: ['policy'],
        summary: 'Effective defaults (model metadata ← config ← stored override) and the stored override',
        response: { 200: defaultsOut, ...errors(401) },
      },
    },
    async () => defaultsView(),
  );

  app.put<{ Body: unknown }>(
    '/api/policy/defaults',
    {
      schema: {
        tags: ['policy'],
        summary:
          'Replace the stored override of the defaults (keys left out fall back to config, then model)',
        body: DefaultsInputJson,
        response: { 200: defaultsOut, ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      policy.setDefaults(request.body, request.principal!.name);
      return defaultsView();
    },
  );
};
