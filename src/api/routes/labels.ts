import type { FastifyPluginAsync } from 'fastify';
import type { Label } from '../../store/store-types.js';
import { ApiError } from '../api-error.js';
import type { ApiDeps } from '../api-deps.js';
import { errors, idParam, LabelJson } from '../schemas.js';

/** Admin labels (human/robot): the ground truth the tuning view learns from. */
export const labelsRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.post<{ Params: { id: string }; Body: { label: Label; note?: string } }>(
    '/api/calls/:id/labels',
    {
      schema: {
        tags: ['labels'],
        summary: 'Label a call as human or robot (ground truth for tuning)',
        params: { type: 'object', properties: { id: idParam }, required: ['id'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            label: { type: 'string', enum: ['human', 'robot'] },
            note: { type: 'string', maxLength: 500 },
          },
          required: ['label'],
        },
        response: { 201: LabelJson, ...errors(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const by = request.principal!.name;
      const rec = deps.store.addLabel(request.params.id, request.body.label, request.body.note ?? '', by);
      if (!rec) throw new ApiError(404, `call '${request.params.id}' not found`);
      deps.store.audit(by, 'call.labelled', request.params.id, { label: rec.label, note: rec.note });
      return reply.status(201).send(rec);
    },
  );
};
