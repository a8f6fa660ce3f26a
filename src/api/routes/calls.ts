import type { FastifyPluginAsync } from 'fastify';
import type { CallFilter } from '../../store/store-types.js';
import { ApiError } from '../api-error.js';
import { parseTime, type ApiDeps } from '../api-deps.js';
import { CallDetailJson, CallSummaryJson, errors, idParam, timeParam } from '../schemas.js';

/** Call history: list with filters and keyset pagination, detail with the score timeline, review audio. */
export const callsRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get<{ Querystring: Record<string, string | number | undefined> }>(
    '/api/calls',
    {
      schema: {
        tags: ['calls'],
        summary: 'List calls, newest first, with filters and keyset pagination',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            cursor: { type: 'string', maxLength: 100, description: 'nextCursor of the previous page' },
            verdict: { type: 'string', enum: ['synthetic', 'human', 'unsure', 'none'] },
            action: { type: 'string', enum: ['drop', 'warn', 'log'] },
            label: { type: 'string', enum: ['human', 'robot', 'none'] },
            treatment: { type: 'string', enum: ['analyse', 'allow', 'deny', 'bypass'] },
            trunk: { type: 'string', maxLength: 100 },
            ruleId: { type: 'string', maxLength: 100 },
            codec: {
              type: 'string',
              enum: ['g711', 'g729', 'other'],
              description:
                "The caller's codec: g711 (PCMU, PCMA), g729, or other (not analysed: G.722, Opus, ...; or none seen)",
            },
            from: timeParam,
            to: timeParam,
            q: { type: 'string', maxLength: 100, description: 'Call id, SIP Call-ID, or part of a number' },
            repeat: {
              type: 'string',
              enum: ['yes', 'no'],
              description: "yes: calls whose caller audio repeated earlier calls' (detector.repeat)",
            },
            known: {
              type: 'string',
              enum: ['yes', 'no'],
              description: 'yes: calls from known callers, whose actions were capped (policy.knownCallers)',
            },
            repeatOf: {
              type: 'string',
              maxLength: 100,
              description: 'A call id: that call and the calls whose audio repeated it first',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: CallSummaryJson },
              nextCursor: { type: ['string', 'null'] },
              total: { type: 'integer' },
            },
            required: ['items', 'nextCursor', 'total'],
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: CallFilter = {
        limit: Number(q.limit ?? 50),
        cursor: (q.cursor as string | undefined) ?? null,
        verdict: q.verdict as CallFilter['verdict'],
        action: q.action as CallFilter['action'],
        label: q.label as CallFilter['label'],
        treatment: q.treatment as string | undefined,
        trunk: q.trunk as string | undefined,
        ruleId: q.ruleId as string | undefined,
        fromMs: parseTime(q.from as string | undefined, 'from'),
        toMs: parseTime(q.to as string | undefined, 'to'),
        q: q.q as string | undefined,
        repeat: q.repeat as CallFilter['repeat'],
        repeatOf: q.repeatOf as string | undefined,
        known: q.known as CallFilter['known'],
        codec: q.codec as CallFilter['codec'],
      };
      return deps.store.listCalls(filter);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/calls/:id',
    {
      schema: {
        tags: ['calls'],
        summary: 'One call with its score timeline, verdict, actions and labels',
        params: { type: 'object', properties: { id: idParam }, required: ['id'] },
        response: { 200: CallDetailJson, ...errors(401, 404) },
      },
    },
    async (request) => {
      const detail = deps.store.getCall(request.params.id);
      if (!detail) throw new ApiError(404, `call '${request.params.id}' not found`);
      return detail;
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/calls/:id/audio',
    {
      schema: {
        tags: ['calls'],
        summary: 'Retained review audio of a call as WAV (only when its rule opted in)',
        params: { type: 'object', properties: { id: idParam }, required: ['id'] },
        response: {
          200: { type: 'string', format: 'binary', description: 'audio/wav' },
          ...errors(401, 404),
        },
      },
    },
    async (request, reply) => {
      const audio = deps.store.getAudio(request.params.id);
      if (!audio) throw new ApiError(404, `no retained audio for call '${request.params.id}'`);
      reply.header('content-type', 'audio/wav');
      reply.header('cache-control', 'no-store');
      return reply.send(wav16(audio.pcm, audio.sampleRateHz));
    },
  );
};

/** 16-bit mono PCM WAV (the store keeps raw samples). */
function wav16(pcm: Buffer, sampleRateHz: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(sampleRateHz, 24);
  h.writeUInt32LE(sampleRateHz * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}
