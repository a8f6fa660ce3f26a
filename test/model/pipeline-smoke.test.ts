import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The Python recipe on ~20 corpus clips: load -> 1 training step -> export -> parity (torch vs
// onnxruntime). It runs into a temp dir and must leave the committed model untouched.
describe('model pipeline smoke run', () => {
  it('prepares, trains one step, exports and passes the parity check (default and experiment options)', async () => {
    const before = statSync('models/voiceguard-detector.onnx').mtimeMs;
    const out = mkdtempSync(join(tmpdir(), 'vg-smoke-'));
    // Asynchronously: a minute of blocked event loop makes vitest's worker RPC time out
    // ("Timeout calling onTaskUpdate", an unhandled error that fails the run).
    const { stdout } = await promisify(execFile)('bash', ['models/smoke.sh', out], {
      encoding: 'utf8',
      timeout: 600_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const last = JSON.parse(stdout.trim().split('\n').pop()!) as {
      ok: boolean;
      parityMaxAbsDiff: number;
      variantParityMaxAbsDiff: number;
      window2sParityMaxAbsDiff: number;
      rawParityMaxAbsDiff: number;
      domainAdvParityMaxAbsDiff: number;
      vocodedSamples: Record<string, number>;
      seenSplits: Record<string, { train: number; seentest: number }>;
      ganAblationSplit: { train: number; drop: number };
      wideLocalTts: {
        englishTexts: number;
        mandarinTexts: number;
        jobs: number;
        seconds: Record<string, number>;
      };
      relatedSplit: Record<string, { withFestival: string; without: string }>;
      dialogue: {
        clips: Record<string, number>;
        groupsOnBothSides: string[];
        languages: Record<string, string[]>;
      };
      tuxpaint: {
        languages: Record<string, string[]>;
        clips: Record<string, number>;
        languagesOnBothSides: string[];
        minSeconds: number;
        valPopulations: string[];
      };
      decision: { pooled: number; perPopulation: number };
      mobileCodecs: Record<string, number>;
      codecTable: {
        codecs: string[];
        drawsDiffer: Record<string, boolean>;
        traceRows: number;
        atCodecBound: string[];
        codecDecisionKeys: string[];
      };
      mixup: { convex: boolean; crossClass: boolean; labelsInRange: boolean; parityMaxAbsDiff: number };
      baseline: {
        frames: number[];
        silentFrames: number[];
        humanSide: boolean;
        syntheticSide: boolean;
        realFinite: boolean;
        selfDifference: { value: number; bootstrap95: [number, number] };
        separatingDifference: number;
      };
      uncertainty: {
        separatedEer: [number, number];
        separatedAuc: [number, number];
        caughtBootstrap: [number, number];
        caughtBinomial: [number, number];
        dropBinomial: [number, number];
        clusters: { syntheticSystems: number; humanGroups: number };
      };
      pairLoss: {
        vocodedWithOrigin: number;
        pairs: number;
        pairLabels: number[];
        copySynthesisRepeatable: Record<string, boolean>;
        envelopeCorrelation: number;
        envelopeCorrelationShifted: number;
        parityMaxAbsDiff: number;
        neuralWithOrigin: number;
        neuralPairSystems: string[];
        allPairSystems: string[];
      };
      trace: {
        keys: string[];
        sameBytes: boolean;
        roundTrip: boolean;
        again: { identical: boolean };
        grown: { identical: boolean; sharedRowsIdentical: boolean; newRows: string[]; droppedRows: string[] };
        shrunk: string[];
        seed: { clips: number; audio: number; channel: number; logits: number };
        net: { clips: number; audio: number; channel: number; logits: number; maxMeanLogitChange: number };
        host: { cpu: string; isa: string[]; packages: Record<string, string | null> };
      };
    };
    expect(last.ok).toBe(true);
    expect(last.parityMaxAbsDiff).toBeLessThan(1e-4);
    expect(existsSync(join(out, 'smoke.onnx'))).toBe(true);
    // The experiment options (linear bands, OC-softmax, EMA, spectrogram masking, SAM, both copy-synthesis
    // vocoders) still run.
    expect(last.variantParityMaxAbsDiff).toBeLessThan(1e-4);
    // --window-s 2: a 2 s window exports and matches onnxruntime too.
    expect(last.window2sParityMaxAbsDiff).toBeLessThan(1e-4);
    expect(existsSync(join(out, 'smoke-2s.onnx'))).toBe(true);
    // --front raw: the learned sinc filter graph exports and matches onnxruntime.
    expect(last.rawParityMaxAbsDiff).toBeLessThan(1e-4);
    expect(existsSync(join(out, 'smoke-raw.onnx'))).toBe(true);
    // --domain-adv: the adversarial head trains and stays out of the exported graph.
    expect(last.domainAdvParityMaxAbsDiff).toBeLessThan(1e-4);
    expect(existsSync(join(out, 'smoke-adv.onnx'))).toBe(true);
    expect(existsSync(join(out, 'smoke-linear-oc.onnx'))).toBe(true);
    expect(Object.keys(last.vocodedSamples).sort()).toEqual(['istft', 'upsample']);
    expect(Object.values(last.vocodedSamples).every((n) => n > 0)).toBe(true);
    // The seen-system protocol keeps a held-out side of every known attack system, group-disjoint.
    expect(last.seenSplits.chattts!.train).toBeGreaterThan(0);
    expect(last.seenSplits.chattts!.seentest).toBeGreaterThan(0);
    // --gan-ablation (an experiment option): the HiFi-GAN ablation sentences train, MelGAN's are dropped.
    expect(last.ganAblationSplit).toEqual({ train: 40, drop: 5 });
    // --local-tts wide: the fetched text sources parse, and festival (both voices) and espeak-ng Mandarin
    // synthesise speech of a plausible length.
    expect(last.wideLocalTts.englishTexts).toBeGreaterThanOrEqual(100);
    expect(last.wideLocalTts.mandarinTexts).toBeGreaterThanOrEqual(100);
    expect(last.wideLocalTts.jobs).toBe(220);
    expect(Object.keys(last.wideLocalTts.seconds).sort()).toEqual([
      'espeak-ng:zh',
      'festival:cmu_us_slt_arctic_hts',
      'festival:ked_diphone',
    ]);
    for (const s of Object.values(last.wideLocalTts.seconds)) expect(s).toBeGreaterThan(0.5);
    // A model trained on Festival reports flite (its sibling engine, same slt speaker) apart from the unseen systems.
    expect(last.relatedSplit).toEqual({ 'local-flite': { withFestival: 'relatedtest', without: 'test' } });
    // The acted dialogue (Fish Fillets NG's dubs) loads: Czech validates, Dutch is tested, no voice on both sides.
    expect(last.dialogue.languages).toEqual({ val: ['cs'], xtest: ['nl'] });
    expect(last.dialogue.clips.val).toBeGreaterThan(500);
    expect(last.dialogue.clips.xtest).toBeGreaterThan(500);
    expect(last.dialogue.groupsOnBothSides).toEqual([]);
    // --tuxpaint (Tux Paint's spoken descriptions, one volunteer per language) splits by language: six train,
    // three validate, each validation language its own drop-bound population; clips hold at least 6 s of speech.
    expect(last.tuxpaint.languages).toEqual({
      train: ['ca', 'da', 'es', 'fr', 'ro', 'ru'],
      val: ['be', 'bg', 'el'],
    });
    expect(last.tuxpaint.clips).toEqual({ train: 18, val: 9 });
    expect(last.tuxpaint.languagesOnBothSides).toEqual([]);
    expect(last.tuxpaint.minSeconds).toBeGreaterThanOrEqual(6);
    expect(last.tuxpaint.valPopulations).toEqual(['tuxpaint:be', 'tuxpaint:bg', 'tuxpaint:el']);
    // The drop bound holds in every large validation population, not only pooled: two stubborn clips in a
    // population of 60 push it above their 5.5 of evidence, where pooled with 200 easy clips they would not.
    expect(last.decision).toEqual({ pooled: 1, perPopulation: 5.75 });
    // The mobile/VoIP codecs of the evaluation and of --mobile-codec run (sox, ffmpeg): each gives every clip back
    // aligned and changed (the pipeline stops otherwise); the value is the lowest correlation with the original.
    // g729-direct: the gateway's own G.729 path (codec-bound --direct), lost frames concealed by the decoder.
    const codecRows = ['amr-nb-12.2', 'amr-nb-4.75', 'g729', 'g729-direct', 'gsm-fr', 'opus-8k'];
    expect(Object.keys(last.mobileCodecs).sort()).toEqual(codecRows);
    for (const r of Object.values(last.mobileCodecs)) expect(r).toBeGreaterThan(0.5);
    // The codec table averages dither draws: with two draws on a toy scorer, every codec row is the mean and
    // range of its draws (the pipeline stops otherwise), draw 1 scores differently from draw 0 for every codec,
    // and both draws of the test and other-language rows are in the trace.
    // g729-direct: the gateway's own G.729 path (no G.711 after the codec), a row of the table since the
    // twenty-third round.
    expect(last.codecTable.codecs).toEqual(codecRows);
    expect(last.codecTable.drawsDiffer).toEqual(Object.fromEntries(codecRows.map((c) => [c, true])));
    // A codec with bounds of its own (decision.byCodec: G.729) has its rows scored at them too, and no other.
    expect(last.codecTable.atCodecBound).toEqual(['g729', 'g729-direct']);
    // decision.byCodec's entries, as calibration fits them (bounds in shape, checked by the pipeline).
    expect(last.codecTable.codecDecisionKeys).toEqual([
      'dropLlr',
      'fittedOn',
      'humanLlr',
      'humanPopulations',
      'warnLlr',
    ]);
    expect(last.codecTable.traceRows).toBe(24);
    // --mixup: every mixed crop is a convex combination of two crops of the batch with its label mixed by the
    // same weight, some across the classes; a net trained with it exports and matches onnxruntime.
    expect(last.mixup).toMatchObject({ convex: true, crossClass: true, labelsInRange: true });
    expect(last.mixup.parityMaxAbsDiff).toBeLessThan(1e-4);
    // The LFCC-GMM baseline (twenty-first round): 99 frames of 60 values in 1 s, one frame kept of a silent
    // clip, toy GMMs score white noise as human and low-passed noise as synthetic, real clips score finitely,
    // and the paired EER difference is 0 for a model against itself and negative for a better one.
    expect(last.baseline).toMatchObject({
      frames: [99, 60],
      silentFrames: [1, 60],
      humanSide: true,
      syntheticSide: true,
      realFinite: true,
      selfDifference: { value: 0, bootstrap95: [0, 0] },
    });
    expect(last.baseline.separatingDifference).toBeLessThan(-0.2);
    // The report's 95% intervals, on made-up scores with known answers: separated classes have a zero-width
    // EER interval; with two synthetic systems, one always caught and one never, the cluster bootstrap spans
    // [0, 1] while the clip-level binomial interval is narrow; 1 drop in 300 is Clopper-Pearson's
    // [0.0000844, 0.0184].
    const u = last.uncertainty;
    expect(u.separatedEer).toEqual([0, 0]);
    expect(u.separatedAuc[0]).toBeCloseTo(1, 9);
    expect(u.clusters).toMatchObject({ syntheticSystems: 2, humanGroups: 30 });
    expect(u.caughtBootstrap).toEqual([0, 1]);
    expect(u.caughtBinomial[0]).toBeCloseTo(0.338, 3);
    expect(u.caughtBinomial[1]).toBeCloseTo(0.662, 3);
    expect(u.dropBinomial[0]).toBeCloseTo(0.0000844, 6);
    expect(u.dropBinomial[1]).toBeCloseTo(0.01843, 4);
    // --pair-loss: every copy-synthesis clip keeps its human original; a pair is the same samples of both
    // (their energy envelopes follow each other, and stop doing so 200 ms out of step); the option trains
    // and exports.
    const pl = last.pairLoss;
    expect(pl.vocodedWithOrigin).toBe(3);
    expect(pl.pairLabels).toEqual([0, 0, 1, 1]);
    // Data preparation repeats: each copy-synthesis vocoder, run twice on the same pick, makes the same audio.
    expect(pl.copySynthesisRepeatable).toEqual({
      'vocoded-stft-gl': true,
      'vocoded-mel-gl': true,
      'vocoded-lpc': true,
    });
    expect(pl.envelopeCorrelation).toBeGreaterThan(0.7);
    expect(pl.envelopeCorrelationShifted).toBeLessThan(0.3);
    expect(pl.parityMaxAbsDiff).toBeLessThan(1e-4);
    // --pair-from neural: the neural vocoder's clips keep their originals, and only they are paired.
    expect(pl.neuralWithOrigin).toBe(2);
    expect(pl.neuralPairSystems).toEqual(['vocoded-neural-upsample']);
    expect(pl.allPairSystems).toContain('vocoded-neural-upsample');
    expect(pl.allPairSystems).toContain('vocoded-lpc');
    // The eval trace: a rerun is identical; another channel seed parts at the channel stage, another network
    // at the logits stage; the gzip file is byte-stable; clips sharing a source get distinct names.
    const tr = last.trace;
    expect(tr.keys).toEqual(['test|s|same-file|0', 'test|s|same-file|1', 'test|s|same-file|2']);
    expect(tr.sameBytes).toBe(true);
    expect(tr.roundTrip).toBe(true);
    expect(tr.again.identical).toBe(true);
    // A run with an added row is not identical, but its shared rows are, and the new row is named; a run
    // missing a row names the dropped one.
    expect(tr.grown).toEqual({
      identical: false,
      sharedRowsIdentical: true,
      newRows: ['added'],
      droppedRows: [],
    });
    expect(tr.shrunk).toEqual(['added']);
    expect(tr.seed).toMatchObject({ clips: 3, audio: 0, channel: 3, logits: 0 });
    expect(tr.net).toMatchObject({ clips: 3, audio: 0, channel: 0, logits: 3 });
    expect(tr.net.maxMeanLogitChange).toBeGreaterThan(0);
    expect(tr.host.cpu.length).toBeGreaterThan(0);
    expect(tr.host.packages.onnxruntime).toMatch(/^\d+\./);
    expect(statSync('models/voiceguard-detector.onnx').mtimeMs).toBe(before);
  }, 600_000);
});
