import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CallEventBus, type CallScoreEvent } from '../src/call-events.js';
import { validateConfig } from '../src/config/load-config.js';
import { silentLogger } from '../src/log.js';
import { Store } from '../src/store/store.js';

/**
 * Store write path and history queries, each against a baseline measured in the same run:
 *
 *  - write: what a call-path emit costs (queueing only) and what the batched flush costs per
 *    row and per 500-row batch (the longest the event loop is held), versus the naive way,
 *    one autocommit INSERT per event on the call path;
 *  - query: the console's history page 150 deep with the keyset cursor versus LIMIT/OFFSET,
 *    on CALLS calls with 20 scores each;
 *  - known caller: the caller-history lookup every analysed INVITE makes (policy.knownCallers), on
 *    HISTORY_CALLS calls (90 days at 2000 inbound calls a day), versus the same query without the
 *    (from_pseudonym, started_ms) index of migration 4.
 */
const CALLS = Number(process.env.VG_BENCH_CALLS ?? 10_000);

export interface LoopFigures {
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  rowsWritten: number;
}

export interface StoreBenchResult {
  calls: number;
  /** 300 live calls scoring twice a second, default flush settings, for LIVE_S seconds. */
  live: { checkpointInWorker: LoopFigures; baselineCheckpointOnMainThread: LoopFigures };
  write: {
    enqueueUsPerEvent: number;
    flushUsPerRow: number;
    flush500RowsMs: number;
    baselineAutocommitUsPerRow: number;
  };
  query: { keysetPage150Ms: number; offsetPage150Ms: number; firstPageMs: number; tuningRowsMs: number };
  /** policy.knownCallers: one caller's history at INVITE (main thread), on HISTORY_CALLS stored calls. */
  knownCaller: {
    calls: number;
    callers: number;
    medianMs: number;
    p99Ms: number;
    baselineNoIndexMedianMs: number;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const HISTORY_CALLS = Number(process.env.VG_BENCH_HISTORY_CALLS ?? 180_000);
const HISTORY_CALLERS = Math.round(HISTORY_CALLS / 5);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Store.callerHistory on a store of HISTORY_CALLS calls from HISTORY_CALLERS callers, with and without its index. */
async function knownCallerQueries(): Promise<StoreBenchResult['knownCaller']> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-bench-known-'));
  try {
    const cfg = validateConfig({ store: { path: join(dir, 'k.sqlite') } });
    const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    const insert = store.db.prepare(
      `INSERT INTO calls (call_id, sip_call_id, direction, source_address, from_number, to_number, from_pseudonym,
         to_pseudonym, treatment, started_ms, answered_ms, ended_ms, verdict, actions)
       VALUES (?, ?, 'inbound', '192.0.2.1', ?, '+4989', ?, 'p:to', 'analyse', ?, ?, ?, ?, ',')`,
    );
    const day = 86_400_000;
    const t0 = Date.now() - 90 * day;
    const number = (c: number) => `+4930${1_000_000 + c}`;
    const pseudonyms = Array.from({ length: HISTORY_CALLERS }, (_, c) => store.pseudonym(number(c)));
    store.db.transaction(() => {
      for (let i = 0; i < HISTORY_CALLS; i++) {
        const c = (i * 7919) % HISTORY_CALLERS;
        const at = t0 + Math.floor((i / HISTORY_CALLS) * 90 * day);
        insert.run(
          `k${i}`,
          `k${i}`,
          number(c),
          pseudonyms[c],
          at,
          at + 3000,
          at + 3000 + (i % 300) * 1000,
          i % 9 ? 'human' : 'synthetic',
        );
      }
    })();
    const since = Date.now() - 90 * day;
    const time = (n: number): number[] => {
      const out: number[] = [];
      for (let q = 0; q < n; q++) {
        const t = performance.now();
        store.callerHistory(number((q * 104_729) % HISTORY_CALLERS), since, 60_000);
        out.push(performance.now() - t);
      }
      return out;
    };
    time(50); // warm the statement and the page cache
    const indexed = time(1000);
    store.db.exec('DROP INDEX calls_from');
    const scan = time(20);
    await store.close(); // the checkpoint worker's connection too: only then may the files go
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      calls: HISTORY_CALLS,
      callers: HISTORY_CALLERS,
      medianMs: r3(median(indexed)),
      p99Ms: r3(percentile(indexed, 99)),
      baselineNoIndexMedianMs: r3(median(scan)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const LIVE_S = 4;
const LIVE_CALLS = 300;

/** Event-loop delay while a gateway-like load writes through the store. */
async function liveLoad(checkpointOnMain: boolean): Promise<LoopFigures> {
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const dir = mkdtempSync(join(tmpdir(), 'vg-bench-live-'));
  try {
    const cfg = validateConfig({ store: { path: join(dir, 'l.sqlite') } });
    const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    if (checkpointOnMain) store.db.pragma('wal_autocheckpoint = 1000'); // SQLite's default
    const bus = new CallEventBus();
    store.subscribe(bus);
    for (let c = 0; c < LIVE_CALLS; c++) {
      bus.emit('call.started', {
        callId: `l${c}`,
        atMs: Date.now(),
        direction: 'inbound',
        trunk: 't',
        sourceAddress: '192.0.2.1',
        fromNumber: `+49${c}`,
        toNumber: '+4989',
        sipCallId: `l${c}`,
        ruleId: null,
        treatment: 'analyse',
      });
    }
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    let t = 0;
    // every 20 ms a tenth of the calls score: 5 scores/s per call, 1500 rows/s in all
    const timer = setInterval(() => {
      t++;
      for (let c = t % 10; c < LIVE_CALLS; c += 10) {
        bus.emit('call.score', {
          callId: `l${c}`,
          atMs: Date.now(),
          tMs: t * 20,
          llr: 0.1,
          cumulativeLlr: t * 0.01,
        });
      }
    }, 20);
    await new Promise((r) => setTimeout(r, LIVE_S * 1000));
    clearInterval(timer);
    h.disable();
    store.flush();
    const rows = (store.db.prepare('SELECT count(*) AS n FROM scores').get() as { n: number }).n;
    await store.close(); // the checkpoint worker's connection too: only then may the files go
    return {
      eventLoopDelayP99Ms: Math.round(h.percentile(99) / 1e4) / 100,
      eventLoopDelayMaxMs: Math.round(h.max / 1e4) / 100,
      rowsWritten: rows,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runStoreBench(): Promise<StoreBenchResult> {
  const live = {
    checkpointInWorker: await liveLoad(false),
    baselineCheckpointOnMainThread: await liveLoad(true),
  };
  return { ...(await runBatchAndQueries()), knownCaller: await knownCallerQueries(), live };
}

async function runBatchAndQueries(): Promise<Omit<StoreBenchResult, 'live' | 'knownCaller'>> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-bench-store-'));
  try {
    const cfg = validateConfig({
      store: {
        path: join(dir, 'b.sqlite'),
        flushIntervalMs: 600_000,
        flushMaxRows: 10_000_000,
        maxQueuedRows: 10_000_000,
      },
    });
    const store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    const bus = new CallEventBus();
    store.subscribe(bus);

    // --- write path
    const t0 = Date.UTC(2026, 0, 1);
    let events = 0;
    let enqueueNs = 0n;
    let flushMs = 0;
    let rows = 0;
    for (let i = 0; i < CALLS; i++) {
      const callId = `c${i}`;
      const s = process.hrtime.bigint();
      bus.emit('call.started', {
        callId,
        atMs: t0 + i * 1000,
        direction: 'inbound',
        trunk: 't',
        sourceAddress: '192.0.2.1',
        fromNumber: `+4930${i}`,
        toNumber: '+4989',
        sipCallId: callId,
        ruleId: null,
        treatment: 'analyse',
      });
      let cum = 0;
      for (let k = 0; k < 20; k++) {
        const llr = Math.sin(i + k);
        cum += llr;
        bus.emit('call.score', { callId, atMs: t0 + i * 1000 + k, tMs: k * 500, llr, cumulativeLlr: cum });
      }
      bus.emit('call.verdict', {
        callId,
        atMs: t0 + i * 1000 + 30,
        verdict: cum > 0 ? 'synthetic' : 'human',
        decisionMs: 3000,
        cumulativeLlr: cum,
      });
      bus.emit('call.ended', { callId, atMs: t0 + i * 1000 + 60, reason: 'bye-caller', sipStatus: null });
      enqueueNs += process.hrtime.bigint() - s;
      events += 23;
      if (i % 1000 === 999) {
        const f = performance.now();
        rows += store.flush();
        flushMs += performance.now() - f;
      }
    }
    // a realistic batch: 500 rows
    const batchTimes: number[] = [];
    for (let b = 0; b < 20; b++) {
      for (let k = 0; k < 500; k++)
        bus.emit('call.score', {
          callId: `c${b}`,
          atMs: 0,
          tMs: 100_000 + k,
          llr: 0.1,
          cumulativeLlr: 1,
        } as CallScoreEvent);
      const f = performance.now();
      store.flush();
      batchTimes.push(performance.now() - f);
    }

    // baseline: one autocommit insert per event, as a naive logger would do on the call path
    const stmt = store.db.prepare(
      'INSERT INTO scores (call_id, at_ms, t_ms, llr, cum_llr) VALUES (?, ?, ?, ?, ?)',
    );
    const N_BASE = 5000;
    const b0 = performance.now();
    for (let k = 0; k < N_BASE; k++) stmt.run('base', 0, k, 0.1, 0.1);
    const baselineUs = ((performance.now() - b0) * 1000) / N_BASE;

    // --- queries
    let cursor: string | null = null;
    for (let p = 0; p < 149; p++) cursor = store.listCalls({ limit: 50, cursor }).nextCursor;
    const keyset: number[] = [];
    const offset: number[] = [];
    const first: number[] = [];
    const tuning: number[] = [];
    const offsetStmt = store.db.prepare(
      'SELECT rowid, * FROM calls ORDER BY started_ms DESC, rowid DESC LIMIT 50 OFFSET ?',
    );
    for (let r = 0; r < 7; r++) {
      let t = performance.now();
      store.listCalls({ limit: 50, cursor });
      keyset.push(performance.now() - t);
      t = performance.now();
      offsetStmt.all(149 * 50);
      store.db.prepare('SELECT count(*) FROM calls').get();
      offset.push(performance.now() - t);
      t = performance.now();
      store.listCalls({ limit: 50 });
      first.push(performance.now() - t);
      t = performance.now();
      store.tuningRows();
      tuning.push(performance.now() - t);
    }
    await store.close(); // the checkpoint worker's connection too: only then may the files go
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      calls: CALLS,
      write: {
        enqueueUsPerEvent: r3(Number(enqueueNs) / 1000 / events),
        flushUsPerRow: r3((flushMs * 1000) / rows),
        flush500RowsMs: r3(median(batchTimes)),
        baselineAutocommitUsPerRow: r3(baselineUs),
      },
      query: {
        keysetPage150Ms: r3(median(keyset)),
        offsetPage150Ms: r3(median(offset)),
        firstPageMs: r3(median(first)),
        tuningRowsMs: r3(median(tuning)),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await runStoreBench();
  console.log(JSON.stringify(r));
  console.log(
    [
      `store bench, ${r.calls} calls x 20 scores`,
      `  call-path emit (queue only)     ${r.write.enqueueUsPerEvent} µs/event`,
      `  batched flush                   ${r.write.flushUsPerRow} µs/row, ${r.write.flush500RowsMs} ms per 500-row batch`,
      `  baseline: autocommit per event  ${r.write.baselineAutocommitUsPerRow} µs/row (on the call path)`,
      `  history page 150, keyset        ${r.query.keysetPage150Ms} ms`,
      `  baseline: LIMIT/OFFSET          ${r.query.offsetPage150Ms} ms`,
      `  first page (+ total count)      ${r.query.firstPageMs} ms`,
      `  tuning rows (all calls)         ${r.query.tuningRowsMs} ms`,
      `  known-caller lookup, ${r.knownCaller.calls} calls of ${r.knownCaller.callers} callers: median ${r.knownCaller.medianMs} ms, p99 ${r.knownCaller.p99Ms} ms`,
      `  baseline: without its index     ${r.knownCaller.baselineNoIndexMedianMs} ms`,
      `  live load: ${LIVE_CALLS} calls, ${r.live.checkpointInWorker.rowsWritten} score rows in ${LIVE_S} s`,
      `    event-loop delay, checkpoints in worker     p99 ${r.live.checkpointInWorker.eventLoopDelayP99Ms} ms, max ${r.live.checkpointInWorker.eventLoopDelayMaxMs} ms`,
      `    baseline: checkpoints on the main thread    p99 ${r.live.baselineCheckpointOnMainThread.eventLoopDelayP99Ms} ms, max ${r.live.baselineCheckpointOnMainThread.eventLoopDelayMaxMs} ms`,
    ].join('\n'),
  );
}
