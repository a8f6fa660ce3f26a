import type { FastifyPluginAsync } from 'fastify';
import type { CallEventMap } from '../../call-events.js';
import type { ApiDeps } from '../api-deps.js';
import { errors } from '../schemas.js';

const STREAMED = [
  'call.started',
  'call.answered',
  'call.rule',
  'call.score',
  'call.verdict',
  'call.action',
  'call.repeat',
  'call.ended',
  'calls.erased',
] as const;
const HEARTBEAT_MS = 15_000;

/**
 * Server-Sent Events of the call bus: `event: call.score` / `data: {...}`. Numbers are
 * pseudonymised when the store keeps no clear numbers. A comment line every 15 s keeps
 * proxies from closing the stream.
 */
export const eventsRoutes: FastifyPluginAsync<ApiDeps> = async (app, { bus, store, config }) => {
  const open = new Set<() => void>();
  app.addHook('onClose', async () => {
    for (const close of [...open]) close();
  });
  app.get(
    '/api/events',
    {
      config: { queryToken: true },
      schema: {
        tags: ['events'],
        summary:
          'Live call events as text/event-stream (token in ?token= because EventSource cannot set headers)',
        querystring: { type: 'object', properties: { token: { type: 'string', maxLength: 200 } } },
        produces: ['text/event-stream'],
        response: { 200: { type: 'string', description: 'event stream' }, ...errors(401) },
      },
    },
    async (request, reply) => {
      const hide = !config.privacy.storeClearNumbers;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': voiceguard events\n\n');
      const listeners = STREAMED.map((name) => {
        const fn = (e: CallEventMap[typeof name][0]) => {
          let data: unknown = e;
          if (hide && name === 'call.started') {
            const s = e as CallEventMap['call.started'][0];
            data = { ...s, fromNumber: store.pseudonym(s.fromNumber), toNumber: store.pseudonym(s.toNumber) };
          }
          // A slow client only fills its own socket buffer; write() never blocks the bus.
          res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
        };
        bus.on(name, fn as never);
        return () => bus.off(name, fn as never);
      });
      const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
      const cleanup = () => {
        if (!open.delete(cleanup)) return;
        clearInterval(heartbeat);
        for (const off of listeners) off();
        res.end();
      };
      open.add(cleanup);
      request.raw.on('close', cleanup);
    },
  );
};
