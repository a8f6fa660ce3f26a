import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import type { ScoreEvent, VerdictEvent } from '../../src/detect/detector-stream.js';
import { DetectorEngine } from '../../src/detect/engine.js';
import { ModelMetadataError } from '../../src/detect/model-metadata.js';
import { ModelLoadError, type ModelRunner } from '../../src/detect/onnx-model.js';
import { decideSequence } from '../../src/detect/sprt-decider.js';
import { generateTone } from '../../src/audio/tone.js';
import { concat, detectorConfig, METADATA_PATH, silence } from './helpers.js';

const OPEN = { upperLlr: 1e6, lowerLlr: -1e6, maxListenMs: 60_000 };

function collect(engine: DetectorEngine, audio: Float32Array, chunk: number, bounds = OPEN) {
  const s = engine.openStream({ streamId: `t${chunk}`, ...bounds });
  const scores: ScoreEvent[] = [];
  const verdicts: VerdictEvent[] = [];
  const errors: unknown[] = [];
  s.on('score', (e) => scores.push(e));
  s.on('verdict', (e) => verdicts.push(e));
  s.on('error', (e) => errors.push(e));
  for (let i = 0; i < audio.length; i += chunk) s.push(audio.subarray(i, i + chunk));
  return { s, scores, verdicts, errors };
}

describe('DetectorEngine and streams (real model)', () => {
  let engine: DetectorEngine;
  const speech = concat([silence(400), speechLikeSignal(7000, 31), silence(300)]);

  beforeAll(async () => {
    engine = await DetectorEngine.create(detectorConfig());
  });
  afterAll(async () => {
    await engine.close();
  });

  it('scores speech windows in order, with the running sum the SPRT sees', async () => {
    const { s, scores, verdicts, errors } = collect(engine, speech, 160);
    const d = await s.end();
    expect(errors).toEqual([]);
    const m = engine.metadata;
    const expectedWindows = Math.floor((7000 * 8 - m.windowSamples) / m.hopSamples) + 1;
    expect(scores.length).toBeGreaterThanOrEqual(expectedWindows - 1);
    expect(scores.length).toBeLessThanOrEqual(expectedWindows + 1);
    let sum = 0;
    for (let i = 0; i < scores.length; i++) {
      sum += m.decision.evidenceWeight * scores[i].llr;
      expect(scores[i].cumulativeLlr).toBeCloseTo(sum, 6);
      if (i > 0) {
        expect(scores[i].tMs).toBeGreaterThan(scores[i - 1].tMs);
        expect(scores[i].speechMs).toBeGreaterThan(scores[i - 1].speechMs);
      }
      expect(scores[i].tMs).toBeLessThanOrEqual(speech.length / 8);
    }
    expect(verdicts).toEqual([{ verdict: 'unsure', decisionMs: null, cumulativeLlr: sum }]);
    expect(d).toMatchObject({ verdict: 'unsure', decisionMs: null });
    s.close();
  });

  it('gives the same scores whatever the chunk size (within 1e-5)', async () => {
    const a = collect(engine, speech, 160);
    const b = collect(engine, speech, 7919);
    const c = collect(engine, speech, speech.length);
    await Promise.all([a.s.end(), b.s.end(), c.s.end()]);
    for (const other of [b, c]) {
      expect(other.scores.length).toBe(a.scores.length);
      other.scores.forEach((e, i) => {
        expect(e.tMs).toBe(a.scores[i].tMs);
        expect(Math.abs(e.llr - a.scores[i].llr)).toBeLessThan(1e-5);
      });
    }
    for (const x of [a, b, c]) x.s.close();
  });

  it('decides exactly where the SPRT over its own scores decides, and keeps scoring after', async () => {
    const probe = collect(engine, speech, 800);
    await probe.s.end();
    probe.s.close();
    // Bounds placed so the evidence this model gives crosses one of them mid-stream.
    const sums = probe.scores.map((e) => e.cumulativeLlr);
    const mid = sums[Math.floor(sums.length / 2)];
    const bounds =
      mid >= 0
        ? { upperLlr: Math.max(mid, 1e-6), lowerLlr: -1e6, maxListenMs: 60_000 }
        : { upperLlr: 1e6, lowerLlr: Math.min(mid, -1e-6), maxListenMs: 60_000 };
    const run = collect(engine, speech, 800, bounds);
    await run.s.end();
    const expected = decideSequence(
      run.scores.map((e) => ({ llr: e.llr, tMs: e.tMs, speechMs: e.speechMs })),
      { ...bounds, evidenceWeight: engine.metadata.decision.evidenceWeight },
    );
    expect(run.verdicts).toHaveLength(1);
    expect(run.verdicts[0].verdict).toBe(expected.verdict);
    expect(run.verdicts[0].decisionMs).toBe(expected.decisionMs);
    expect(expected.verdict).not.toBe('unsure');
    expect(run.scores.length).toBe(probe.scores.length);
    run.s.close();
  });

  it('ends unsure at the listening limit with that time', async () => {
    const run = collect(engine, speech, 1600, { upperLlr: 1e6, lowerLlr: -1e6, maxListenMs: 2500 });
    await run.s.end();
    expect(run.verdicts).toHaveLength(1);
    expect(run.verdicts[0].verdict).toBe('unsure');
    const first = run.scores.find((e) => e.speechMs >= 2500)!;
    expect(run.verdicts[0].decisionMs).toBe(first.tMs);
    run.s.close();
  });

  it('does not score ringback, DTMF or silence', async () => {
    const tones = concat([
      generateTone({ frequenciesHz: [440, 480], durationMs: 2000, levelDbfs: -12 }),
      silence(4000),
      ...[697, 770, 852, 941].map((f) =>
        concat([generateTone({ frequenciesHz: [f, 1209], durationMs: 100, levelDbfs: -10 }), silence(100)]),
      ),
      generateTone({ frequenciesHz: [425], durationMs: 3000, levelDbfs: -15 }),
    ]);
    const run = collect(engine, tones, 160);
    await run.s.end();
    expect(run.scores).toEqual([]);
    expect(run.verdicts).toEqual([{ verdict: 'unsure', decisionMs: null, cumulativeLlr: 0 }]);
    run.s.close();
  });

  it('close() is idempotent, emits closed once, drops late results, and push after close is ignored', async () => {
    const run = collect(engine, speech, speech.length);
    let closedEvents = 0;
    run.s.on('closed', () => closedEvents++);
    // Windows are queued for inference now; closing must discard their results.
    expect(engine.stats().activeStreams).toBeGreaterThan(0);
    run.s.close();
    run.s.close();
    run.s.push(speech);
    await engine.idle();
    await new Promise((r) => setTimeout(r, 20));
    expect(run.scores).toEqual([]);
    expect(run.verdicts).toEqual([]);
    expect(closedEvents).toBe(1);
    expect(run.s.closed).toBe(true);
    expect(await run.s.end()).toBeNull();
  });

  it('never throws from push(): bad input becomes an error event, or a log line without a listener', () => {
    const s = engine.openStream({ streamId: 'bad', ...OPEN });
    const errors: Array<{ message: string }> = [];
    s.on('error', (e) => errors.push(e));
    expect(() => s.push([1, 2, 3] as unknown as Float32Array)).not.toThrow();
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/Float32Array/);
    s.close();
    const quiet = engine.openStream({ streamId: 'bad2', ...OPEN });
    expect(() => quiet.push(null as unknown as Float32Array)).not.toThrow();
    expect(() => quiet.push(new Float32Array([NaN, Infinity, -Infinity, 1e30]))).not.toThrow();
    quiet.close();
  });

  it('rejects bounds that cannot form a test', () => {
    expect(() => engine.openStream({ streamId: 'x', upperLlr: -1, lowerLlr: -2, maxListenMs: 1000 })).toThrow(
      RangeError,
    );
  });

  it('counts streams, windows and batches', async () => {
    const before = engine.stats();
    const runs = [collect(engine, speech, 4000), collect(engine, speech, 4000)];
    expect(engine.stats().activeStreams).toBe(before.activeStreams + 2);
    await Promise.all(runs.map((r) => r.s.end()));
    const after = engine.stats();
    expect(after.windowsScored - before.windowsScored).toBe(runs[0].scores.length + runs[1].scores.length);
    expect(after.batches).toBeGreaterThan(before.batches);
    for (const r of runs) r.s.close();
    expect(engine.stats().activeStreams).toBe(before.activeStreams);
  });
});

describe('DetectorEngine faults', () => {
  it('reports a failing model as stream errors, and the stream goes on', async () => {
    let calls = 0;
    const md = JSON.parse(readFileSync(METADATA_PATH, 'utf8'));
    const runner: ModelRunner = {
      windowSamples: md.windowSamples,
      run: (_b, count) =>
        ++calls === 1
          ? Promise.reject(new Error('simulated ORT failure'))
          : Promise.resolve(new Float32Array(count)),
      release: async () => {},
    };
    const engine = await DetectorEngine.create({ ...detectorConfig({ batchMaxSize: 1 }), runner });
    const run = collect(engine, speechLikeSignal(4000, 2), 160);
    await run.s.end();
    expect(run.errors.length).toBe(1);
    expect((run.errors[0] as { message: string }).message).toMatch(/simulated ORT failure/);
    expect(run.scores.length).toBeGreaterThan(0);
    expect(engine.stats().inferenceErrors).toBe(1);
    await engine.close();
    expect(run.s.closed).toBe(true);
  });

  it('fails loudly at start-up on a missing model, bad metadata, or a window size the model does not take', async () => {
    await expect(
      DetectorEngine.create(detectorConfig({ modelPath: '/nonexistent/model.onnx' })),
    ).rejects.toThrow(ModelLoadError);
    const dir = mkdtempSync(join(tmpdir(), 'vg-md-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'x' }));
    await expect(DetectorEngine.create(detectorConfig({ metadataPath: bad }))).rejects.toThrow(
      ModelMetadataError,
    );
    const md = JSON.parse(readFileSync(METADATA_PATH, 'utf8'));
    const wrong = join(dir, 'wrong.json');
    const half = Math.floor(md.windowSamples / 2);
    writeFileSync(
      wrong,
      JSON.stringify({
        ...md,
        windowSamples: half,
        hopSamples: half,
        input: { ...md.input, shape: ['batch', half] },
      }),
    );
    await expect(DetectorEngine.create(detectorConfig({ metadataPath: wrong }))).rejects.toThrow(
      ModelLoadError,
    );
  });
});
