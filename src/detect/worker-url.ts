import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread on a sibling module of `fromUrl` (e.g. './inference-worker.js').
 * Built code (dist/) loads the .js file directly. When running from TypeScript sources (vitest,
 * tsx) the worker boots through tsx's loader on the .ts file, so the engine behaves the same
 * in tests as in production.
 */
export function startWorker(sibling: string, fromUrl: string, options: WorkerOptions = {}): Worker {
  if (!fromUrl.endsWith('.ts')) return new Worker(new URL(sibling, fromUrl), options);
  const target = new URL(sibling.replace(/\.js$/, '.ts'), fromUrl).href;
  const boot =
    `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(target)}); })` +
    `.catch((e) => { console.error(e); process.exit(1); });`;
  return new Worker(boot, { ...options, eval: true });
}
