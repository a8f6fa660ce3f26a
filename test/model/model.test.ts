import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { decodeWav } from '../../src/audio/wav.js';
import { loadModelMetadata } from '../../src/detect/model-metadata.js';

const MODEL = 'models/voiceguard-detector.onnx';
const META = 'models/voiceguard-detector.json';
const FIXTURES = 'test/fixtures';

interface Reference {
  label: 'human' | 'synthetic';
  windowSamples: number;
  hopSamples: number;
  logits: number[];
  meanLlr: number;
}

const references = JSON.parse(readFileSync(join(FIXTURES, 'reference-scores.json'), 'utf8')) as Record<
  string,
  Reference
>;

function windows(samples: Float32Array, win: number, hop: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let s = 0; s + win <= samples.length; s += hop) out.push(samples.slice(s, s + win));
  return out;
}

describe('committed detector model', () => {
  const meta = loadModelMetadata(META);

  it('has metadata that matches the ONNX graph and stays within the size budget', async () => {
    const session = await ort.InferenceSession.create(MODEL);
    expect(session.inputNames).toContain(meta.input.name);
    expect(session.outputNames).toContain(meta.output.name);
    expect(readFileSync(MODEL).length).toBeLessThan(8 * 1024 * 1024);
    expect(meta.decision.humanLlr).toBeLessThan(meta.decision.warnLlr);
    expect(meta.decision.warnLlr).toBeLessThanOrEqual(meta.decision.dropLlr);
  });

  it('has fixtures of both classes, each with reference scores', () => {
    const wavs = readdirSync(FIXTURES).filter((f) => f.endsWith('.wav') && /^(human|synthetic)-/.test(f));
    expect(wavs.some((f) => f.startsWith('human-'))).toBe(true);
    expect(wavs.some((f) => f.startsWith('synthetic-'))).toBe(true);
    for (const f of wavs) expect(references[f], f).toBeDefined();
  });

  it('matches the Python onnxruntime reference within 1e-4 and puts fixtures on the right side', async () => {
    const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
    for (const [file, ref] of Object.entries(references)) {
      const audio = decodeWav(readFileSync(join(FIXTURES, file)));
      expect(audio.sampleRateHz).toBe(8000);
      const ws = windows(audio.samples, ref.windowSamples, ref.hopSamples);
      expect(ws.length, file).toBe(ref.logits.length);
      const batch = new Float32Array(ws.length * ref.windowSamples);
      ws.forEach((w, i) => batch.set(w, i * ref.windowSamples));
      const out = await session.run({
        [meta.input.name]: new ort.Tensor('float32', batch, [ws.length, ref.windowSamples]),
      });
      const logits = out[meta.output.name]!.data as Float32Array;
      for (let i = 0; i < logits.length; i++) {
        expect(Math.abs(logits[i]! - ref.logits[i]!), `${file} window ${i}`).toBeLessThan(1e-4);
      }
      const llrs = Array.from(logits, (l) => meta.calibration.scale * l + meta.calibration.bias);
      const meanLlr = llrs.reduce((a, b) => a + b, 0) / llrs.length;
      expect(meanLlr > 0, `${file}: mean llr ${meanLlr.toFixed(2)}`).toBe(ref.label === 'synthetic');
    }
  });
});

describe('model card', () => {
  it('is what models/model_card.py renders from the committed JSON, eval and baseline reports', () => {
    // The card is generated; a hand edit or a report committed without its card would drift silently.
    const rendered = execFileSync(
      'python3',
      [
        '-c',
        'import json, sys; sys.path.insert(0, "models"); import model_card as m; ' +
          'r = lambda p: json.load(open(p)); ' +
          'sys.stdout.write(m.render(r("models/voiceguard-detector.json"), r("models/eval.json"), r("models/baseline.json"), ' +
          'r("models/tuxpaint-probe.json")))',
      ],
      { encoding: 'utf8' },
    );
    expect(rendered).toBe(readFileSync('models/MODEL_CARD.md', 'utf8'));
    expect(rendered).toMatch(/Against the standard baseline \(LFCC-GMM/);
    // The Tux Paint volunteers' probe (models/tuxpaint-probe.json) scored this very version: its numbers are in the card.
    expect(rendered).toMatch(
      /A human population it never trained on: Tux Paint's spoken stamp descriptions \(.*687 clips/,
    );
  });
});
