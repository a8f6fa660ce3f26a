import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitCall, startHarness, type Harness } from './api-harness.js';

/**
 * The API must stay fast with 10,000+ calls. Seeds 10k calls (20 scores each, a fifth
 * labelled) through the real bus and store, then times the console's queries. Bounds are
 * loose (a shared 2-core box), about 10x the measured times; the numbers are printed.
 */
const N = 10_000;
let h: Harness;
const timings: Record<string, number> = {};

beforeAll(async () => {
  h = await startHarness({
    store: { flushIntervalMs: 60_000, flushMaxRows: 1_000_000, maxQueuedRows: 1_000_000 },
  });
  const t0 = Date.UTC(2026, 9, 1);
  const verdicts = ['synthetic', 'human', 'unsure'] as const;
  let seeded = 0;
  const flushT = performance.now();
  for (let i = 0; i < N; i++) {
    const robot = i % 7 === 0;
    const base = robot ? 0.8 : -0.4;
    const scores = Array.from({ length: 20 }, (_, k) => base + Math.sin(i * 13 + k) * 0.9);
    emitCall(h.bus, {
      atMs: t0 + i * 30_000,
      scores,
      verdict: verdicts[i % 3]!,
      actions: robot ? ['warn', 'drop'] : [],
      from: `+4930${i}`,
    });
    if (i % 1000 === 999) seeded += h.store.flush();
  }
  seeded += h.store.flush();
  timings.seedFlushMsPer1kCalls = ((performance.now() - flushT) / N) * 1000;
  // started, answered, 20 scores, verdict, ended; robots also warn + drop
  expect(seeded).toBe(N * 24 + Math.ceil(N / 7) * 2);
  const labels = h.store.db.prepare(
    "UPDATE calls SET label = CASE WHEN rowid % 7 = 1 THEN 'robot' ELSE 'human' END WHERE rowid % 5 = 0",
  );
  labels.run();
}, 120_000);

afterAll(async () => {
  console.log(JSON.stringify({ scale: { calls: N, scoresPerCall: 20, timingsMs: timings } }));
  await h.close();
});

async function timed(name: string, url: string, runs = 5): Promise<unknown> {
  let body: unknown = null;
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = await h.app.inject({ url, headers: h.viewer });
    samples.push(performance.now() - t);
    expect(r.statusCode, r.body).toBe(200);
    body = r.json();
  }
  samples.sort((a, b) => a - b);
  timings[name] = Math.round(samples[Math.floor(runs / 2)]! * 100) / 100;
  return body;
}

describe(`API with ${N} calls`, () => {
  it('lists, filters and pages fast', async () => {
    const first = (await timed('listFirstPage', '/api/calls?limit=50')) as {
      total: number;
      nextCursor: string;
    };
    expect(first.total).toBe(N);
    await timed('listFilteredVerdictAction', '/api/calls?limit=50&verdict=synthetic&action=drop');
    await timed('listSearchNumber', '/api/calls?limit=50&q=%2B49301234');
    // walk 100 pages deep with the cursor, then time the page there
    let cursor = first.nextCursor;
    for (let i = 0; i < 100; i++) {
      const r = (
        await h.app.inject({ url: `/api/calls?limit=50&cursor=${cursor}`, headers: h.viewer })
      ).json() as { nextCursor: string };
      cursor = r.nextCursor;
    }
    await timed('listPage100', `/api/calls?limit=50&cursor=${cursor}`);
    expect(timings.listFirstPage).toBeLessThan(100);
    expect(timings.listPage100).toBeLessThan(100);
  });

  it('detail, stats and tuning stay fast', async () => {
    const id = h.store.listCalls({ limit: 1 }).items[0]!.id;
    await timed('detail', `/api/calls/${id}`);
    await timed('stats', '/api/stats?from=0');
    const t = (await timed('tuning', '/api/tuning')) as {
      labelled: { human: number; robot: number };
      analysedCalls: number;
    };
    expect(t.analysedCalls).toBe(N);
    expect(t.labelled.human + t.labelled.robot).toBe(N / 5);
    expect(timings.detail).toBeLessThan(50);
    expect(timings.stats).toBeLessThan(300);
    expect(timings.tuning).toBeLessThan(500);
  });
});
