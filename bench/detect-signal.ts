/**
 * A deterministic speech-like test signal for the detector bench: voiced syllables (a gliding
 * 90–260 Hz harmonic source through two moving formants) separated by short pauses, at a
 * telephone level. It passes the VAD like speech does, so the bench exercises the whole path
 * (gate, windows, model, SPRT) without needing recordings on the machine.
 */
export function speechLikeSignal(durationMs: number, seed = 1, sampleRateHz = 8000): Float32Array {
  const n = Math.round((durationMs * sampleRateHz) / 1000);
  const out = new Float32Array(n);
  let state = seed >>> 0 || 1;
  const rand = (): number => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 4294967296;
  };
  let phase = 0;
  let t = 0;
  while (t < n) {
    const syl = Math.round(sampleRateHz * (0.15 + 0.25 * rand()));
    const gap = Math.round(sampleRateHz * (0.03 + 0.12 * rand()));
    const f0a = 90 + 170 * rand();
    const f0b = 90 + 170 * rand();
    const f1 = 300 + 500 * rand();
    const f2 = 900 + 1500 * rand();
    for (let i = 0; i < syl && t + i < n; i++) {
      const u = i / syl;
      const f0 = f0a + (f0b - f0a) * u;
      phase += (2 * Math.PI * f0) / sampleRateHz;
      let s = 0;
      for (let h = 1; h * f0 < 3600; h++) {
        const fh = h * f0;
        const g = 1 / (1 + ((fh - f1) / 150) ** 2) + 0.5 / (1 + ((fh - f2) / 250) ** 2);
        s += g * Math.sin(h * phase);
      }
      const env = Math.sin(Math.PI * u);
      out[t + i] = 0.08 * env * s + 0.002 * (rand() - 0.5);
    }
    t += syl;
    for (let i = 0; i < gap && t + i < n; i++) out[t + i] = 0.002 * (rand() - 0.5);
    t += gap;
  }
  return out;
}
