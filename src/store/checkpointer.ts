import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';

/**
 * WAL checkpoints in a worker thread. In WAL mode with synchronous=NORMAL a commit never
 * fsyncs; the only fsyncs are at checkpoints, when WAL pages are copied into the database file.
 * The main connection has auto-checkpointing switched off and this worker, with its own
 * connection, checkpoints every intervalMs, so a slow disk stalls this thread and never the
 * event loop that carries SIP. A PASSIVE checkpoint never waits for the writer either.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const tick = () => {
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, row });
  } catch (err) {
    parentPort.postMessage({ ok: false, message: String(err && err.message || err) });
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'now') tick();
  if (m === 'stop') { clearInterval(timer); db.close(); process.exit(0); }
});
`;

export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

export class Checkpointer {
  private readonly worker: Worker;
  private lastError: string | null = null;
  private waiters: ((r: CheckpointResult | null) => void)[] = [];
  private readonly exited: Promise<void>;

  constructor(path: string, intervalMs: number, logger: Logger) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, intervalMs, driver: createRequire(import.meta.url).resolve('better-sqlite3') },
    });
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (m: { ok: boolean; row?: CheckpointResult; message?: string }) => {
      if (!m.ok) {
        if (m.message !== this.lastError)
          logger.warn({ event: 'store.checkpoint_error', err: m.message }, 'WAL checkpoint failed');
        this.lastError = m.message ?? null;
      } else this.lastError = null;
      for (const w of this.waiters.splice(0)) w(m.ok ? m.row! : null);
    });
    this.worker.on('error', (err) =>
      logger.error({ event: 'store.checkpoint_error', err: err.message }, 'checkpoint worker failed'),
    );
  }

  /** Runs a checkpoint now (tests, shutdown); resolves with SQLite's counters. */
  checkpointNow(): Promise<CheckpointResult | null> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.worker.postMessage('now');
    });
  }

  /**
   * Asks the worker to close its connection and exit. The promise settles once the worker has
   * exited, i.e. its SQLite connection is closed and the database files may be moved or deleted.
   */
  close(): Promise<void> {
    // Unref'd so that it never keeps a process alive, but a caller that awaits the close must see
    // it settle: held until the worker is gone (otherwise a process with nothing else left exits
    // with the await unsettled, code 13).
    this.worker.ref();
    this.worker.postMessage('stop');
    for (const w of this.waiters.splice(0)) w(null);
    return this.exited;
  }
}
