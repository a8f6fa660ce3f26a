/**
 * Run by stream-lifecycle.test.ts in a child `node --expose-gc`: opens, feeds and closes many
 * streams on one engine and prints heap and handle figures before and after as JSON.
 */
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { DetectorEngine } from '../../src/detect/engine.js';
import { detectorConfig } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const total = Number(process.argv[2] ?? 10_000);
const engine = await DetectorEngine.create(detectorConfig());
const W = engine.metadata.windowSamples;
const shortClip = speechLikeSignal(300, 1);
const longClip = speechLikeSignal(((W + engine.metadata.hopSamples) / 8000) * 1000 + 400, 2);

async function cycle(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const s = engine.openStream({ streamId: `call-${i}`, upperLlr: 3, lowerLlr: -3, maxListenMs: 8000 });
    s.on('score', () => {});
    s.on('verdict', () => {});
    s.on('error', () => {});
    const kind = i % 10;
    if (kind === 0) {
      // Full life: windows scored, stream ended, then closed.
      s.push(longClip);
      await s.end();
      s.close();
    } else if (kind === 1) {
      // Closed while its windows wait for inference: late results must be dropped.
      s.push(longClip);
      s.close();
    } else {
      for (let o = 0; o < shortClip.length; o += 160) s.push(shortClip.subarray(o, o + 160));
      s.close();
    }
    if (i % 500 === 499) await engine.idle();
  }
  await engine.idle();
}

function settle(): void {
  for (let i = 0; i < 6; i++) gc!();
}

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

await cycle(1000); // warm-up: JIT, ORT arenas, pools
await new Promise((r) => setTimeout(r, 50));
settle();
const heapBefore = process.memoryUsage().heapUsed;
const resBefore = resources();
const scoredBefore = engine.stats().windowsScored;

await cycle(total);
await new Promise((r) => setTimeout(r, 50));
settle();
const heapAfter = process.memoryUsage().heapUsed;
const resAfter = resources();
const stats = engine.stats();
await engine.close();
process.stdout.write(
  JSON.stringify({
    total,
    heapBefore,
    heapAfter,
    resBefore,
    resAfter,
    activeStreams: stats.activeStreams,
    windowsScored: stats.windowsScored - scoredBefore,
    inferenceErrors: stats.inferenceErrors,
  }) + '\n',
);
