import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The console's static files: next to this module when it runs from src/ (tsx, tests), or
 * src/api/console from dist/src/api (npm start, the image: the Dockerfile copies dist/ and
 * src/api/console/ side by side, and the npm package lists both in `files`).
 */
export function consoleDir(moduleDir = here): string {
  const candidates = [join(moduleDir, 'console'), join(moduleDir, '..', '..', '..', 'src', 'api', 'console')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`web console files not found (looked in ${candidates.join(', ')})`);
  return found;
}

function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

/** Only plain file names below the folder: no traversal, no dot files. */
const SAFE_PATH = /^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*\/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

// Static files stream their body; the schema documents that and keeps them out of the OpenAPI doc.
const fileSchema = {
  hide: true,
  response: { 200: { type: 'string', description: 'static file' }, 404: { $ref: 'ApiError#' } },
};

/**
 * The web console (vanilla ES modules, no build step) at `/`, its assets at `/assets/*` and uPlot
 * at `/vendor/uplot/*`. All public: the console logs in with an API token through the API.
 */
export const consolePlugin: FastifyPluginAsync = async (app) => {
  const root = consoleDir();
  const vendor = uplotDir();
  await app.register(fastifyStatic, { root, serve: false });

  const send = (reply: FastifyReply, rel: string, dir: string) => {
    if (!SAFE_PATH.test(rel))
      return reply.status(404).send({ statusCode: 404, error: 'Not Found', message: 'no such file' });
    return reply.sendFile(rel, dir, { cacheControl: true, maxAge: 0 });
  };

  app.get('/', { schema: fileSchema }, (_request, reply) => send(reply, 'index.html', root));
  app.get<{ Params: { '*': string } }>('/assets/*', { schema: fileSchema }, (request, reply) =>
    send(reply, request.params['*'], root),
  );
  app.get<{ Params: { '*': string } }>('/vendor/uplot/*', { schema: fileSchema }, (request, reply) =>
    send(reply, request.params['*'], vendor),
  );
};
