"""The detector network: log-mel front end inside the graph + a compact CNN.

Input: float32 PCM [batch, 8000] at 8 kHz in [-1, 1]. Output: one raw logit per window
(positive = synthetic). The STFT is a Conv1d with fixed DFT kernels so the exported ONNX
graph needs no STFT operator and runs fast in onnxruntime on one thread.
"""
import math

import numpy as np
import torch
import torch.nn as nn

SR = 8000
N_FFT = 256
HOP = 80
N_MELS = 48


def mel_matrix(n_fft=N_FFT, n_mels=N_MELS, sr=SR, fmin=60.0, fmax=3900.0):
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def linear_matrix(n_fft=N_FFT, n_bands=N_MELS, sr=SR, fmin=60.0, fmax=3940.0):
    """Triangular bands spaced evenly in Hz (the LFCC filterbank): unlike mel it keeps the
    2-4 kHz region, where vocoder and upsampling traces live, at full resolution. As many bands as
    the mel front end (48, 81 Hz apart), so both cost the same per window."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = np.linspace(fmin, fmax, n_bands + 2)
    m = np.zeros((n_bands, len(freqs)), dtype=np.float32)
    for i in range(n_bands):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        m[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return m


def quefrency_lifters(n_bins=N_FFT // 2 + 1, envelope=16, noise=100):
    """Two fixed [bins, bins] lifters on the log-power spectrum (orthonormal DCT-II, keep a quefrency
    range, invert). Index n of the DCT of a 0-4 kHz log spectrum is a ripple of period 8000/n Hz:
    - harmonic: 16 <= n < 100, ripples 80-500 Hz apart, the harmonic comb of a 80-500 Hz voice;
    - noise: n >= 100, the finest ripples, the aperiodic part and frame-to-frame estimation noise.
    n < 16 is the spectral envelope (formants, the line's colouring, the speaker's timbre), which is
    removed: what is left is the excitation's fine structure, which is what a vocoder synthesises."""
    import scipy.fft

    c = scipy.fft.dct(np.eye(n_bins), type=2, norm="ortho", axis=0)  # c @ x = DCT(x)
    n = np.arange(n_bins)
    out = []
    for keep in ((n >= envelope) & (n < noise), n >= noise):
        out.append((c.T @ np.diag(keep.astype(np.float64)) @ c).astype(np.float32))
    return out


class LogMel(nn.Module):
    """Log filterbank energies, and with phase=True two phase-regularity maps on the same bands.

    G.711 quantises the waveform sample by sample, so phase survives the line. The maps are
    magnitude-weighted coherences in [0, 1]: per band, |sum_k w_k P_k| / sum_k w_k |P_k| with
    - time coherence: P_k = X_t,k * conj(X_t-1,k), high when one stable partial owns the band from one
      frame to the next (its phase advances the same in every bin it leaks into);
    - frequency coherence: P_k = X_t,k * conj(X_t,k-1), high when the frame holds one clear
      excitation instant (a glottal pulse gives a linear phase across frequency).
    Vocoders rebuild phase (Griffin-Lim iterates it, GAN and iSTFT vocoders predict it), and these
    are the regularities they get wrong. Only sums, products and one sqrt: the graph stays cheap."""

    def __init__(self, bands="mel", phase=False, fine=False, cmn=True):
        super().__init__()
        self.cmn = cmn
        self.phase = phase
        self.fine = fine
        n_bins = N_FFT // 2 + 1
        window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        k = np.arange(n_bins)[:, None]
        n = np.arange(N_FFT)[None, :]
        cos = (np.cos(2 * math.pi * k * n / N_FFT) * window).astype(np.float32)
        sin = (-np.sin(2 * math.pi * k * n / N_FFT) * window).astype(np.float32)
        kernel = np.concatenate([cos, sin], axis=0)[:, None, :]  # [2*bins, 1, n_fft]
        self.register_buffer("dft", torch.from_numpy(kernel))
        self.register_buffer("mel", torch.from_numpy(mel_matrix() if bands == "mel" else linear_matrix()))
        self.n_bins = n_bins
        if fine:
            harm, noise = quefrency_lifters(n_bins)
            self.register_buffer("lift_harm", torch.from_numpy(harm))
            self.register_buffer("lift_noise", torch.from_numpy(noise))
            fb = self.mel / self.mel.sum(dim=1, keepdim=True)
            self.register_buffer("band_mean", fb)

    def forward(self, x):  # x [B, T]
        # Level normalisation inside the graph: the caller's loudness and the line's gain
        # carry no information about the voice's origin.
        x = x - x.mean(dim=1, keepdim=True)
        rms = torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-8)
        x = x / (rms + 1e-3)
        spec = nn.functional.conv1d(x.unsqueeze(1), self.dft, stride=HOP)  # [B, 2*bins, F]
        re, im = spec[:, : self.n_bins], spec[:, self.n_bins :]
        power = re * re + im * im
        mel = torch.matmul(self.mel, power)  # [B, mels, F]
        logmel = torch.log(mel + 1e-6)
        # Per-window cepstral-mean-style normalisation removes a fixed channel colouring. Without it
        # (cmn=False, --no-cmn) only the window's mean log level goes, and a fixed colouring stays
        # visible: the channel simulation randomises the line's, a vocoder's own may be evidence.
        if self.cmn:
            logmel = logmel - logmel.mean(dim=2, keepdim=True)
        else:
            logmel = logmel - logmel.mean(dim=(1, 2), keepdim=True)
        maps = [logmel]
        if self.phase:
            maps += [self._coherence(re, im, time=True), self._coherence(re, im, time=False)]
        if self.fine:
            maps += self._fine_structure(power)
        return logmel if len(maps) == 1 else torch.stack(maps, dim=1)

    def _fine_structure(self, power):
        """Per band, the log energy of the harmonic and of the noise ripple of the log spectrum (see
        quefrency_lifters). Gain and a fixed channel colouring sit in the envelope and drop out."""
        logp = torch.log(power + 1e-6)
        out = []
        for lift in (self.lift_harm, self.lift_noise):
            r = torch.matmul(lift, logp)
            out.append(torch.log(torch.matmul(self.band_mean, r * r) + 1e-3) * 0.5)
        return out

    def _coherence(self, re, im, time):
        if time:  # neighbour = previous frame, same bin; the first frame repeats the second's value
            ar, ai, br, bi = re[:, :, 1:], im[:, :, 1:], re[:, :, :-1], im[:, :, :-1]
        else:  # neighbour = next-lower bin, same frame; bin 0 pairs with itself (DC carries no speech)
            ar, ai = re, im
            br = torch.cat([re[:, :1], re[:, :-1]], dim=1)
            bi = torch.cat([im[:, :1], im[:, :-1]], dim=1)
        pr = ar * br + ai * bi  # a * conj(b)
        pi = ai * br - ar * bi
        mag = torch.sqrt(pr * pr + pi * pi + 1e-12)
        sr, si, sm = torch.matmul(self.mel, pr), torch.matmul(self.mel, pi), torch.matmul(self.mel, mag)
        coh = torch.sqrt(sr * sr + si * si + 1e-12) / (sm + 1e-6)
        if time:
            coh = torch.cat([coh[:, :, :1], coh], dim=2)
        return coh - 0.5


class SpecMask(nn.Module):
    """SpecAugment-style masking (Park et al. 2019) of the front end's output, in training only: with
    probability p a crop loses one run of up to max_bands adjacent bands and one run of up to
    max_frames frames, set to 0 (the per-band mean after the normalisation above). A net that
    cannot count on any one band or instant has to spread its evidence, which is what should carry to
    unseen vocoders whose traces sit elsewhere. Identity in eval mode, so the exported graph is unchanged."""

    def __init__(self, p=0.0, max_bands=8, max_frames=20):
        super().__init__()
        self.p, self.max_bands, self.max_frames = p, max_bands, max_frames

    def forward(self, f):  # f [B, C, bands, frames]
        if not self.training or self.p <= 0:
            return f
        b, _, nb, nf = f.shape
        keep = torch.ones(b, 1, nb, nf, dtype=f.dtype)
        on = torch.rand(b) < self.p
        for i in torch.nonzero(on).flatten().tolist():
            w = int(torch.randint(1, self.max_bands + 1, ()))
            s = int(torch.randint(0, nb - w + 1, ()))
            keep[i, :, s : s + w] = 0
            w = int(torch.randint(1, self.max_frames + 1, ()))
            s = int(torch.randint(0, nf - w + 1, ()))
            keep[i, :, :, s : s + w] = 0
        return f * keep


class MFM(nn.Module):
    """Max-Feature-Map (Wu et al. 2018, the activation of LCNN, the ASVspoof LFCC/log-mel baseline family):
    the channels come in two halves and each output channel is the larger of its pair. It is a
    competitive selection between two learned filters rather than a threshold at zero, which the
    anti-spoofing literature credits with keeping what separates spoofed from bona fide speech."""

    def forward(self, x):
        a, b = torch.chunk(x, 2, dim=1)
        return torch.maximum(a, b)


def block(cin, cout, act="relu"):
    """Two 3x3 convolutions and a 2x2 max pool. act "mfm": each convolution makes twice the channels and
    MFM halves them again (LCNN-style; twice the parameters and multiply-adds of the relu block)."""
    if act == "mfm":
        return nn.Sequential(
            nn.Conv2d(cin, 2 * cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * cout),
            MFM(),
            nn.Conv2d(cout, 2 * cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * cout),
            MFM(),
            nn.MaxPool2d(2),
        )
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class GradReverse(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by -lam on the way back (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


class Detector(nn.Module):
    """bands: "mel" (48 mel bands) or "linear" (48 LFCC-style bands, evenly spaced in Hz).
    phase: add the two phase-coherence maps of LogMel as input channels (first conv 3 -> 16).
    fine: add the two fine-structure maps of LogMel (harmonic and noise ripple energy per band).
    loss: "bce" (one logit, binary cross-entropy) or "oc" (OC-softmax, Zhang et al. 2021: a
    32-d embedding whose cosine to a learned human centre is pushed above m_h for human speech
    and below m_s for everything else; the human class is kept compact and "not human" open,
    which is what helps on unseen TTS). act: "relu" or "mfm" (Max-Feature-Map, LCNN-style; see block()). Either way the graph outputs one score per window,
    positive = synthetic, that the pipeline calibrates to an LLR.
    domains > 0 (training only, --domain-adv): a second head reads the pooled features through a
    gradient-reversal layer and learns which training system or human source a crop came from, within
    its class; the body is pushed to make that impossible (domain-adversarial training), so that what
    it keeps is what the systems of a class share rather than each one's own trace. The head is not
    part of forward(), so the exported graph is the same net."""

    def __init__(self, width=16, bands="mel", loss="bce", emb=32, phase=False, spec_mask=0.0, fine=False, domains=0, cmn=True, act="relu"):
        super().__init__()
        self.front = LogMel(bands, phase, fine, cmn)
        self.mask = SpecMask(spec_mask)
        self.loss_kind = loss
        w = width
        self.body = nn.Sequential(block(1 + 2 * phase + 2 * fine, w, act), block(w, 2 * w, act), block(2 * w, 3 * w, act), block(3 * w, 4 * w, act))
        if loss == "oc":
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, emb))
            self.centre = nn.Parameter(torch.randn(emb))
        else:
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, 1))
        self.domain_head = nn.Linear(8 * w, domains) if domains > 0 else None

    def pooled(self, audio):
        f = self.front(audio)
        if f.dim() == 3:
            f = f.unsqueeze(1)
        h = self.body(self.mask(f))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def embed(self, audio):
        return self.head(self.pooled(audio))

    def domain_loss(self, audio, y, domains, allowed, lam):
        """Binary cross-entropy plus the adversarial domain term: the domain head's cross-entropy over
        the domains of the crop's own class (allowed: [2, n] booleans, by label), its gradient into the
        body reversed and scaled by lam. Returns (total, bce, domain cross-entropy)."""
        p = self.pooled(audio)
        bce = nn.functional.binary_cross_entropy_with_logits(self.head(p).squeeze(1), y)
        logits = self.domain_head(GradReverse.apply(p, lam))
        logits = logits.masked_fill(~allowed[y.long()], float("-inf"))
        ce = nn.functional.cross_entropy(logits, domains)
        return bce + ce, bce, ce

    def cosine(self, audio):
        e = nn.functional.normalize(self.embed(audio), dim=1)
        return e @ nn.functional.normalize(self.centre, dim=0)

    def forward(self, audio):
        if self.loss_kind == "oc":
            # OC_ALPHA * (midpoint of the margins - cosine): > 0 means "not like human speech".
            return OC_ALPHA * ((OC_M_HUMAN + OC_M_SYNTH) / 2 - self.cosine(audio))
        return self.embed(audio).squeeze(1)

    def loss(self, audio, y):
        """y: 1 = synthetic, 0 = human."""
        if self.loss_kind == "oc":
            s = self.cosine(audio)
            # human: softplus(a * (m_h - s)); synthetic: softplus(a * (s - m_s))
            z = torch.where(y > 0.5, OC_ALPHA * (s - OC_M_SYNTH), OC_ALPHA * (OC_M_HUMAN - s))
            return nn.functional.softplus(z).mean()
        return nn.functional.binary_cross_entropy_with_logits(self.embed(audio).squeeze(1), y)


OC_ALPHA = 20.0
OC_M_HUMAN = 0.9
OC_M_SYNTH = 0.2


class SincConv(nn.Module):
    """Band-pass filters whose two cut-offs are learned (SincNet, Ravanelli & Bengio 2018; the front end
    of RawNet2 and AASIST): each filter is the difference of two windowed sinc low-passes. Initialised on
    the mel scale over 30-3950 Hz. The filters are a function of 2 x n parameters, so the exported graph
    computes them from constants (onnxruntime folds them once)."""

    def __init__(self, n=32, taps=65, sr=SR, fmin=30.0, fmax=3950.0, min_band=50.0):
        super().__init__()
        mel = np.linspace(2595 * np.log10(1 + fmin / 700), 2595 * np.log10(1 + fmax / 700), n + 1)
        hz = 700 * (10 ** (mel / 2595) - 1)
        self.low = nn.Parameter(torch.tensor(hz[:-1], dtype=torch.float32))
        self.band = nn.Parameter(torch.tensor(np.diff(hz), dtype=torch.float32))
        self.sr, self.min_band, self.fmin = sr, min_band, fmin
        t = (np.arange(taps) - (taps - 1) / 2) / sr
        self.register_buffer("t", torch.tensor(t, dtype=torch.float32)[None, :])
        self.register_buffer("win", torch.tensor(np.hamming(taps), dtype=torch.float32)[None, :])
        self.pad = taps // 2

    def filters(self):
        lo = self.fmin + torch.abs(self.low)[:, None]
        hi = torch.clamp(lo + self.min_band + torch.abs(self.band)[:, None], max=self.sr / 2)

        def lowpass(f):  # 2f sinc(2 pi f t), with the t = 0 tap written out (no division by zero)
            x = 2 * math.pi * f * self.t
            safe = torch.where(x == 0, torch.ones_like(x), x)
            return 2 * f * torch.where(x == 0, torch.ones_like(x), torch.sin(safe) / safe)

        k = (lowpass(hi) - lowpass(lo)) * self.win
        return (k / (k.abs().sum(dim=1, keepdim=True) + 1e-6)).unsqueeze(1)  # [n, 1, taps], unit L1

    def forward(self, x):  # x [B, 1, T]
        return nn.functional.conv1d(x, self.filters(), padding=self.pad)


class RawBlock(nn.Module):
    """Pre-activation 1-D residual block with filter-wise feature-map scaling (RawNet2's FMS: a sigmoid gate
    per channel from the block's mean output), then max-pooling by 3."""

    def __init__(self, cin, cout):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm1d(cin), nn.BatchNorm1d(cout)
        self.c1 = nn.Conv1d(cin, cout, 3, padding=1, bias=False)
        self.c2 = nn.Conv1d(cout, cout, 3, padding=1, bias=False)
        self.skip = nn.Conv1d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.fms = nn.Linear(cout, cout)
        self.act = nn.LeakyReLU(0.3)

    def forward(self, x):
        h = self.c1(self.act(self.bn1(x)))
        h = self.c2(self.act(self.bn2(h))) + self.skip(x)
        h = nn.functional.max_pool1d(h, 3)
        g = torch.sigmoid(self.fms(h.mean(dim=2))).unsqueeze(2)
        return h * g + g


class RawDetector(nn.Module):
    """An AASIST-L/RawNet2-class raw-waveform net retargeted to 8 kHz (`--front raw`): level normalisation,
    32 learned sinc band-passes (65 taps, 8 ms), |.| and max-pool 3, then four residual blocks (width,
    width, 2 width, 2 width channels, each pooling by 3: 2666 -> 33 steps), mean+max pooling over time and
    a linear head. Unlike the spectrogram front end it keeps the waveform's sub-millisecond structure
    (the excitation's fine timing and phase), which is where vocoders differ from a vocal tract.
    Binary cross-entropy only; the interface is Detector's."""

    def __init__(self, width=32, filters=32):
        super().__init__()
        self.sinc = SincConv(filters)
        self.bn0 = nn.BatchNorm1d(filters)
        w = width
        self.body = nn.Sequential(RawBlock(filters, w), RawBlock(w, w), RawBlock(w, 2 * w), RawBlock(2 * w, 2 * w))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * w, 1))
        self.loss_kind = "bce"

    def embed(self, audio):
        x = audio - audio.mean(dim=1, keepdim=True)
        x = x / (torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-8) + 1e-3)
        h = nn.functional.max_pool1d(torch.abs(self.sinc(x.unsqueeze(1))), 3)
        h = nn.functional.leaky_relu(self.bn0(h), 0.3)
        h = self.body(h)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    def forward(self, audio):
        return self.embed(audio).squeeze(1)

    def loss(self, audio, y):
        return nn.functional.binary_cross_entropy_with_logits(self.embed(audio).squeeze(1), y)
