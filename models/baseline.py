"""The field's standard baseline, LFCC-GMM (ASVspoof 2019/2021 baseline B1), retargeted to 8 kHz telephone audio.

It is a comparison row for the report (EXPERIMENTS.md, twenty-first round), not part of the runtime: a model of
another kind, on the same clips and channel draws as the net, tells whether the net is beyond the usual
baseline and whether the two hear different things.
"""
import numpy as np
from scipy.fft import dct
from sklearn.mixture import GaussianMixture

SR = 8000
FRAME = 160  # 20 ms
STEP = 80  # 10 ms
NFFT = 256
N_FILTERS = 20
N_CEPS = 20
FLOOR_DBFS = -45.0  # frames below it are silence or line noise, not speech


def _linear_filterbank():
    """N_FILTERS triangular filters spaced evenly over 0-4 kHz (linear, where MFCC would use mel: the high band
    is where vocoder traces live, and a mel scale would blur it)."""
    bins = NFFT // 2 + 1
    edges = np.linspace(0, bins - 1, N_FILTERS + 2)
    k = np.arange(bins)
    fb = np.zeros((N_FILTERS, bins))
    for i in range(N_FILTERS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((k - lo) / (mid - lo), (hi - k) / (hi - mid)), 0, None)
    return fb


FILTERBANK = _linear_filterbank()
WINDOW = np.hamming(FRAME)


def _delta(x, width=2):
    """Regression deltas over +-width frames (edges repeated), as in the B1 recipe."""
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(n * (pad[width + n : len(x) + width + n] - pad[width - n : len(x) + width - n]) for n in range(1, width + 1))
    return num / (2 * sum(n * n for n in range(1, width + 1)))


def lfcc(x):
    """(frames, 60): 20 cepstra of the log linear-filterbank energies, with deltas and double deltas, speech frames only.
    A clip with no frame above the floor keeps its loudest frame, so every clip gets a score."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    n = 1 + (len(x) - FRAME) // STEP
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::STEP][:n]
    power = np.abs(np.fft.rfft(frames * WINDOW, NFFT)) ** 2
    ceps = dct(np.log(power @ FILTERBANK.T + 1e-10), type=2, norm="ortho", axis=1)[:, :N_CEPS]
    d1 = _delta(ceps)
    feats = np.hstack([ceps, d1, _delta(d1)])
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    keep = level > FLOOR_DBFS
    return feats[keep] if keep.any() else feats[[int(np.argmax(level))]]


def fit_gmm(frames, components, seed):
    return GaussianMixture(components, covariance_type="diag", max_iter=50, reg_covar=1e-4, init_params="k-means++",
                           random_state=seed).fit(frames)


def sample_frames(per_clip, limit, rng):
    """At most `limit` frames from the stacked clips, drawn without replacement (every clip can contribute)."""
    allf = np.vstack(per_clip)
    if len(allf) <= limit:
        return allf
    return allf[np.sort(rng.choice(len(allf), limit, replace=False))]


class LfccGmm:
    """Two GMMs, human and synthetic. score() is a clip's mean frame log-likelihood ratio (synthetic minus human)."""

    def __init__(self, components=512, frames_per_class=200_000, seed=0):
        self.components, self.frames_per_class, self.seed = components, frames_per_class, seed

    def fit(self, audio, labels, log=print):
        rng = np.random.default_rng(self.seed)
        feats = [lfcc(a) for a in audio]
        self.gmms = {}
        for label in (0, 1):
            frames = sample_frames([f for f, y in zip(feats, labels) if y == label], self.frames_per_class, rng)
            log(f"LFCC-GMM: fitting the {'synthetic' if label else 'human'} GMM ({self.components} components) on {len(frames)} frames")
            self.gmms[label] = fit_gmm(frames, self.components, self.seed)
        return self

    def score(self, x):
        f = lfcc(x)
        return float(np.mean(self.gmms[1].score_samples(f) - self.gmms[0].score_samples(f)))
