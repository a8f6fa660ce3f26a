import { parentPort, workerData } from 'node:worker_threads';
import { runAnalyzeFileJob, type AnalyzeFileJob } from './analysis-job.js';
import { DetectorEngine, type DetectorEngineOptions } from './engine.js';

/**
 * Worker-thread entry of the analysis pool: one detector engine (its own ONNX session) per
 * worker, analysing the files the pool hands it, one at a time.
 */

export type WorkerRequest = { type: 'job'; id: number; job: AnalyzeFileJob } | { type: 'close' };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) return;
  let engine: DetectorEngine;
  try {
    engine = await DetectorEngine.create(workerData.engine as DetectorEngineOptions);
  } catch (err) {
    port.postMessage({ type: 'fatal', message: (err as Error).message });
    return;
  }
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'close') {
      void engine.close().finally(() => port.close());
      return;
    }
    void runAnalyzeFileJob(engine, msg.job).then((outcome) =>
      port.postMessage({ type: 'result', id: msg.id, outcome }),
    );
  });
  port.postMessage({ type: 'ready' });
}

void main();
