import { parentPort, workerData } from 'node:worker_threads';
import { RelayEngine, type RelayEngineOptions } from './relay-engine.js';
import type { ToWorker } from './media-types.js';

/** Entry point of a relay worker thread: one RelayEngine, driven by messages from media-relay.ts. */
const port = parentPort;
if (!port) throw new Error('relay-worker.ts must run as a worker thread');
const opts = workerData as RelayEngineOptions & { statsEveryMs: number };
const engine = new RelayEngine(opts, (msg, transfer) => port.postMessage(msg, transfer ?? []));
engine.startStatsReports(opts.statsEveryMs);
port.on('message', (msg: ToWorker | { t: 'shutdown' }) => {
  if (msg.t === 'shutdown') {
    engine.shutdown();
    port.close();
    return;
  }
  engine.handle(msg);
});
