import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../api-error.js';
import type { ApiDeps } from '../api-deps.js';
import { isPseudonym } from '../../store/pseudonym.js';
import { errors, idParam } from '../schemas.js';

/** What an erasure did, for the admin to keep as the answer to the request. */
const ErasureJson = {
  type: 'object',
  properties: {
    calls: { type: 'integer', description: 'Call records deleted, with everything that hangs off them' },
    skippedLive: {
      type: 'array',
      items: { type: 'string' },
      description: 'Calls still in progress, not erased: repeat the request after they end',
    },
    auditEntries: {
      type: 'integer',
      description: 'Audit entries deleted (about those calls, or naming the number)',
    },
    fingerprintsInMemory: {
      type: 'integer',
      description: "Erased calls the gateway's repeated-audio index still held, and has now forgotten",
    },
    ledgerWritten: {
      type: ['boolean', 'null'],
      description:
        'The erasure was recorded in the erasure ledger, so a restored backup is erased again at start (false: writing it failed, see the log; null: nothing to record)',
    },
    walTruncated: {
      type: 'boolean',
      description: 'The write-ahead log was truncated after the delete (false: a reader held it)',
    },
    listEntries: {
      type: 'array',
      description: 'Allow/deny list entries that name the number: policy, kept; remove them by hand if asked',
      items: {
        type: 'object',
        properties: { id: { type: 'string' }, kind: { type: 'string' }, pattern: { type: 'string' } },
        required: ['id', 'kind', 'pattern'],
      },
    },
  },
  required: [
    'calls',
    'skippedLive',
    'auditEntries',
    'fingerprintsInMemory',
    'walTruncated',
    'ledgerWritten',
    'listEntries',
  ],
};

/**
 * Erasure for data subject requests (GDPR Art. 17): one call, or every call from or to a number,
 * deleted with its scores, verdicts, actions, labels, review audio, fingerprint and audit entries,
 * from the store and from the gateway's memory. Calls in progress are skipped and named. The
 * erasure itself is audited without the number.
 */
export const erasureRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  const erase = (ids: string[], terms: string[]) => {
    const live = new Set(deps.live.list().map((c) => c.id));
    const skippedLive = ids.filter((id) => live.has(id));
    const erasable = ids.filter((id) => !live.has(id));
    const r = deps.store.eraseCalls(erasable, terms);
    const fingerprintsInMemory = erasable.length ? (deps.forgetCalls?.(erasable) ?? 0) : 0;
    // Receivers of these calls' events are told to forget them (webhook kind 'erasure', SSE).
    if (erasable.length) deps.bus.emit('calls.erased', { atMs: Date.now(), callIds: erasable });
    return {
      calls: r.calls,
      skippedLive,
      auditEntries: r.auditEntries,
      fingerprintsInMemory,
      walTruncated: r.walTruncated,
      ledgerWritten: r.ledgerWritten,
    };
  };

  app.delete<{ Params: { id: string } }>(
    '/api/calls/:id',
    {
      schema: {
        tags: ['privacy'],
        summary: 'Erase one call and everything recorded about it',
        params: { type: 'object', properties: { id: idParam }, required: ['id'] },
        response: { 200: ErasureJson, ...errors(401, 403, 404, 409) },
      },
    },
    async (request) => {
      const id = request.params.id;
      if (!deps.store.getCall(id)) throw new ApiError(404, `call '${id}' not found`);
      if (deps.live.list().some((c) => c.id === id))
        throw new ApiError(409, `call '${id}' is in progress; erase it after it ends`);
      const r = erase([id], []);
      deps.store.audit(request.principal!.name, 'call.erased', id, { calls: r.calls });
      deps.logger.info(
        { event: 'privacy.call_erased', callId: id, by: request.principal!.name },
        'call erased',
      );
      return { ...r, listEntries: [] };
    },
  );

  app.post<{ Body: { number: string } }>(
    '/api/erasure',
    {
      schema: {
        tags: ['privacy'],
        summary: 'Erase every call from or to a number (a clear number or its p: pseudonym)',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            number: {
              type: 'string',
              minLength: 1,
              maxLength: 100,
              description: 'The number as the caller or callee had it, or the pseudonym the store shows',
            },
          },
          required: ['number'],
        },
        response: { 200: ErasureJson, ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const number = request.body.number.trim();
      if ((number.match(/\d/g) ?? []).length < 3 && !isPseudonym(number))
        throw new ApiError(
          400,
          `'${number}' is not a phone number or a p: pseudonym (fewer than three digits)`,
        );
      const pseudonym = isPseudonym(number) ? number : deps.store.pseudonym(number);
      const ids = deps.store.callIdsOfNumber(number);
      const r = erase(ids, [...new Set([number, pseudonym])]);
      const listEntries = deps.store.listEntriesNaming(number);
      // The audit keeps that an erasure happened and its size, never whose.
      deps.store.audit(request.principal!.name, 'privacy.erased', '', {
        calls: r.calls,
        skippedLive: r.skippedLive.length,
      });
      deps.logger.info(
        {
          event: 'privacy.number_erased',
          calls: r.calls,
          skippedLive: r.skippedLive.length,
          by: request.principal!.name,
        },
        'calls of a number erased',
      );
      return { ...r, listEntries };
    },
  );
};
