import { parentPort, workerData } from 'node:worker_threads';
import type { ModelMetadata } from './model-metadata.js';
import { OnnxModelRunner } from './onnx-model.js';

/**
 * Worker-thread host of one ONNX session (see worker-model-runner.ts). onnxruntime-node runs a
 * session synchronously on the calling thread, so scoring here keeps the main event loop (SIP,
 * API, timers) free while a batch is computed.
 */

export type InferenceWorkerRequest =
  { id: number; batch: Float32Array; count: number } | { id: -1; close: true };
export type InferenceWorkerReply =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'result'; id: number; logits: Float32Array }
  | { type: 'error'; id: number; message: string };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const { modelPath, metadata, intraOpThreads } = workerData as {
    modelPath: string;
    metadata: ModelMetadata;
    intraOpThreads: number;
  };
  let runner: OnnxModelRunner;
  try {
    runner = await OnnxModelRunner.create({ modelPath, metadata, intraOpThreads });
  } catch (err) {
    port.postMessage({ type: 'fatal', message: (err as Error).message } satisfies InferenceWorkerReply);
    return;
  }
  port.on('message', (msg: InferenceWorkerRequest) => {
    if ('close' in msg) {
      void runner.release().finally(() => port.close());
      return;
    }
    runner.run(msg.batch, msg.count).then(
      (logits) =>
        port.postMessage({ type: 'result', id: msg.id, logits } satisfies InferenceWorkerReply, [
          logits.buffer as ArrayBuffer,
        ]),
      (err: unknown) =>
        port.postMessage({
          type: 'error',
          id: msg.id,
          message: (err as Error)?.message ?? String(err),
        } satisfies InferenceWorkerReply),
    );
  });
  port.postMessage({ type: 'ready' } satisfies InferenceWorkerReply);
}

void main();
