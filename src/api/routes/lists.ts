import type { FastifyPluginAsync } from 'fastify';
import type { ListKind } from '../../policy/policy-types.js';
import type { ApiDeps } from '../api-deps.js';
import { errors, idParam, ListEntryInputJson, ListEntryJson } from '../schemas.js';

/** Allow list (never analysed) and deny list (rejected at INVITE) of calling numbers. */
export const listsRoutes: FastifyPluginAsync<ApiDeps> = async (app, { policy }) => {
  const kind = { type: 'string', enum: ['allow', 'deny'] };
  app.get<{ Params: { kind: ListKind } }>(
    '/api/lists/:kind',
    {
      schema: {
        tags: ['lists'],
        summary: 'Entries of the allow or deny list',
        params: { type: 'object', properties: { kind }, required: ['kind'] },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: ListEntryJson } },
            required: ['items'],
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => ({ items: policy.listEntries(request.params.kind) }),
  );

  app.post<{ Params: { kind: ListKind }; Body: unknown }>(
    '/api/lists/:kind',
    {
      schema: {
        tags: ['lists'],
        summary: 'Add a number pattern to a list',
        params: { type: 'object', properties: { kind }, required: ['kind'] },
        body: ListEntryInputJson,
        response: { 201: ListEntryJson, ...errors(400, 401, 403, 409) },
      },
    },
    async (request, reply) =>
      reply.status(201).send(policy.addListEntry(request.params.kind, request.body, request.principal!.name)),
  );

  app.delete<{ Params: { kind: ListKind; id: string } }>(
    '/api/lists/:kind/:id',
    {
      schema: {
        tags: ['lists'],
        summary: 'Remove a list entry',
        params: { type: 'object', properties: { kind, id: idParam }, required: ['kind', 'id'] },
        response: { 204: { type: 'null' }, ...errors(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      policy.removeListEntry(request.params.kind, request.params.id, request.principal!.name);
      return reply.status(204).send();
    },
  );
};
