/**
 * Child process for the crash-consistency test: writes calls through the real Store as fast as
 * it can, reporting each flushed call count on stdout, until it is killed with SIGKILL.
 * Call i has atMs = i, SCORES score rows, a verdict and an end, all emitted in one tick.
 */
import { CallEventBus } from '../../src/call-events.js';
import { validateConfig } from '../../src/config/load-config.js';
import { silentLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';

export const SCORES = 20;
const path = process.argv[2]!;
const cfg = validateConfig({ store: { path, flushIntervalMs: 10, flushMaxRows: 2000 } });
const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
const bus = new CallEventBus();
store.subscribe(bus);
let i = 0;
let flushedCalls = 0;
const timer = setInterval(() => {
  // Flush by hand too, so the parent sees progress and the kill lands mid-transaction often.
  const before = i;
  store.flush();
  flushedCalls = before;
  process.stdout.write(`flushed ${flushedCalls}\n`);
}, 5);
timer.unref();
function burst(): void {
  for (let k = 0; k < 50; k++, i++) {
    const callId = `c${String(i).padStart(8, '0')}`;
    bus.emit('call.started', {
      callId,
      atMs: i,
      direction: 'inbound',
      trunk: 't',
      sourceAddress: '192.0.2.1',
      fromNumber: `+49${i}`,
      toNumber: '+4989',
      sipCallId: callId,
      ruleId: null,
      treatment: 'analyse',
    });
    for (let s = 0; s < SCORES; s++)
      bus.emit('call.score', { callId, atMs: i, tMs: s * 500, llr: 0.5, cumulativeLlr: 0.5 * (s + 1) });
    bus.emit('call.verdict', {
      callId,
      atMs: i,
      verdict: 'synthetic',
      decisionMs: 1000,
      cumulativeLlr: 0.5 * SCORES,
    });
    bus.emit('call.ended', { callId, atMs: i + 1, reason: 'bye-caller', sipStatus: null });
  }
  setImmediate(burst);
}
burst();
