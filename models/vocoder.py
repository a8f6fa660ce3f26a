"""A small neural vocoder for copy-synthesis spoofs, trained on CPU on the TRAIN human clips only.

Why: Wang & Yamagishi (ICASSP 2023) show that resynthesising human speech through neural vocoders
and labelling it synthetic teaches a detector the vocoder's traces instead of speaker, text or
channel. Griffin-Lim and LPC resynthesis (pipeline.copy_synthesis) leave traces unlike those of the
neural vocoders that modern TTS ends in. No pretrained vocoder can be fetched here, so we train one.

The design follows Vocos (Siuzdenko et al., 2023; the vocoder behind ChatTTS): a ConvNeXt stack
maps log-mel frames to STFT log-magnitude and phase, and an inverse STFT makes the waveform. It is
trained with a multi-resolution STFT loss plus a mel loss, and optionally (gan=True) against a
multi-resolution spectrogram discriminator as in Vocos; its outputs carry the smoothed harmonics and
learned-phase artefacts typical of neural vocoders. It never needs to sound good, only to leave the kind of trace a real one leaves.
"""
import time

import numpy as np
import torch
import torch.nn as nn

SR = 8000
N_FFT = 320
HOP = 80
N_MELS = 64


MEL_BASIS = None  # set (a [N_MELS, N_FFT // 2 + 1] array) where librosa is missing, e.g. by models/gpu_vocoders.py


def mel_basis():
    if MEL_BASIS is not None:
        return torch.from_numpy(np.asarray(MEL_BASIS, dtype=np.float32))
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=50, fmax=3900).astype(np.float32))


class ConvNeXt(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):  # [B, C, T]
        y = self.dw(x).transpose(1, 2)
        y = self.pw2(nn.functional.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class Vocoder(nn.Module):
    def __init__(self, dim=128, layers=5):
        super().__init__()
        self.register_buffer("mel", mel_basis())
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.inp = nn.Conv1d(N_MELS, dim, 7, padding=3)
        self.blocks = nn.Sequential(*[ConvNeXt(dim, dim * 3) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 2 * (N_FFT // 2 + 1))

    def logmel(self, x):
        spec = torch.stft(x, N_FFT, HOP, window=self.window, return_complex=True).abs() ** 2
        return torch.log(torch.matmul(self.mel, spec) + 1e-5)

    def forward(self, logmel):  # [B, mels, T] -> audio [B, samples]
        h = self.blocks(self.inp(logmel)).transpose(1, 2)
        mag, phase = self.out(self.norm(h)).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(mag.clamp(max=6.0))
        spec = torch.polar(mag, phase)
        return torch.istft(spec, N_FFT, HOP, window=self.window)


class ResBlock(nn.Module):
    def __init__(self, ch, dilations=(1, 3, 9), kernel=3):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, kernel, padding=d * (kernel - 1) // 2, dilation=d) for d in dilations)

    def forward(self, x):
        for c in self.convs:
            x = x + c(nn.functional.leaky_relu(x, 0.1))
        return x


class MRF(nn.Module):
    """HiFi-GAN's multi-receptive-field fusion: the mean of residual stacks of several kernel sizes."""

    def __init__(self, ch, kernels):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(ch, (1, 3, 5), k) for k in kernels)

    def forward(self, x):
        return sum(b(x) for b in self.blocks) / len(self.blocks)


class UpsampleVocoder(nn.Module):
    """HiFi-GAN/MelGAN-style generator: transposed-convolution upsampling (5 x 4 x 4 = HOP) with
    dilated residual blocks, straight to the waveform. Its traces (upsampling images, periodic
    artefacts at the frame rate) differ from the iSTFT vocoder's, so the two together cover both
    vocoder families that TTS systems end in."""

    def __init__(self, ch=64, kernels=(3,)):
        super().__init__()
        self.register_buffer("mel", mel_basis())
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.inp = nn.Conv1d(N_MELS, ch, 7, padding=3)
        ups = []
        c = ch
        for k, s in ((10, 5), (8, 4), (8, 4)):
            # kernels=(3,) is the CPU recipe's block; (3, 7, 11) is HiFi-GAN's multi-receptive-field fusion.
            ups += [nn.LeakyReLU(0.1), nn.ConvTranspose1d(c, c // 2, k, s, padding=(k - s) // 2),
                    ResBlock(c // 2) if len(kernels) == 1 else MRF(c // 2, kernels)]
            c //= 2
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv1d(c, 1, 7, padding=3)

    logmel = Vocoder.logmel

    def forward(self, logmel):
        y = torch.tanh(self.out(nn.functional.leaky_relu(self.ups(self.inp(logmel)), 0.1)))
        return y[:, 0]


def stft_loss(y, x):
    loss = 0.0
    for n_fft, hop in ((128, 32), (256, 64), (512, 128)):
        w = torch.hann_window(n_fft, device=y.device)
        Y = torch.stft(y, n_fft, hop, window=w, return_complex=True).abs() + 1e-5
        X = torch.stft(x, n_fft, hop, window=w, return_complex=True).abs() + 1e-5
        loss = loss + torch.norm(X - Y) / torch.norm(X) + (torch.log(X) - torch.log(Y)).abs().mean()
    return loss


class SpecDiscriminator(nn.Module):
    """One resolution of Vocos' multi-resolution discriminator: 2-D convolutions over the log-magnitude
    STFT. Returns the logits map and the hidden feature maps (for feature matching)."""

    def __init__(self, n_fft, hop, ch=16):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.convs = nn.ModuleList([
            nn.Conv2d(1, ch, (3, 9), padding=(1, 4)),
            nn.Conv2d(ch, ch, (3, 9), stride=(2, 2), padding=(1, 4)),
            nn.Conv2d(ch, ch, (3, 9), stride=(2, 2), padding=(1, 4)),
            nn.Conv2d(ch, ch, (3, 3), padding=(1, 1)),
        ])
        self.out = nn.Conv2d(ch, 1, (3, 3), padding=(1, 1))

    def forward(self, y):
        x = torch.stft(y, self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        x = torch.log(x + 1e-4)[:, None].transpose(2, 3)  # [B, 1, T, F]
        feats = []
        for c in self.convs:
            x = nn.functional.leaky_relu(c(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class PeriodDiscriminator(nn.Module):
    """One period of HiFi-GAN's multi-period discriminator: the waveform folded into [T/p, p] and
    convolved along time only, so it sees the periodic structure (pitch, frame-rate artefacts)."""

    def __init__(self, period, ch=32):
        super().__init__()
        self.period = period
        chans = (1, ch, ch * 4, ch * 8, ch * 8)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, (5, 1), stride=(3 if i < 3 else 1, 1), padding=(2, 0))
                                   for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])))
        self.out = nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, y):
        b, t = y.shape
        if t % self.period:
            y = nn.functional.pad(y, (0, self.period - t % self.period), mode="reflect")
        x = y.view(b, 1, -1, self.period)
        feats = []
        for c in self.convs:
            x = nn.functional.leaky_relu(c(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class MultiResDiscriminator(nn.Module):
    """Vocos' multi-resolution spectrogram discriminator; with periods, HiFi-GAN's multi-period one
    joins it (the pairing that BigVGAN and most GAN vocoders since use)."""

    def __init__(self, ch=16, periods=()):
        super().__init__()
        self.ds = nn.ModuleList([*(SpecDiscriminator(n, h, ch) for n, h in ((128, 32), (256, 64), (512, 128))),
                                 *(PeriodDiscriminator(p) for p in periods)])

    def forward(self, y):
        return [d(y) for d in self.ds]


def make_vocoder(arch="istft", size=None):
    """The CPU recipe's vocoders (size None) or a larger configuration: size is a dict of the
    constructor's arguments (istft: dim, layers; upsample: ch, kernels)."""
    size = dict(size or {})
    if "kernels" in size:
        size["kernels"] = tuple(size["kernels"])
    return Vocoder(**size) if arch == "istft" else UpsampleVocoder(**size)


def train_vocoder(clips, steps, seed=0, log=print, arch="istft", gan=False, size=None, batch=12, crop=6000,
                  disc_ch=16, periods=(), device="cpu", max_seconds=None, checkpoint=None):
    """Train on random crops (crop samples, 0.75 s by default) of the given (TRAIN, human) clips for a
    fixed number of steps, or until max_seconds of wall time have passed. With gan, a multi-resolution
    spectrogram discriminator (hinge loss plus feature matching, as in Vocos and HiFi-GAN; with periods,
    HiFi-GAN's multi-period discriminator too) joins after the first third of the steps: adversarial
    training is what leaves the fine spectral traces of real GAN vocoders, which reconstruction losses
    alone smooth away. With max_seconds, the discriminator joins after a third of that time.
    checkpoint(voc, step) is called every 1000 steps (e.g. to save the weights of a long run)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    voc = make_vocoder(arch, size).to(device)
    opt = torch.optim.AdamW(voc.parameters(), lr=1e-3 if size is None else 4e-4, betas=(0.8, 0.99) if size else (0.9, 0.999))
    disc = MultiResDiscriminator(disc_ch, periods).to(device) if gan else None
    opt_d = torch.optim.AdamW(disc.parameters(), lr=2e-4, betas=(0.8, 0.99)) if gan else None
    gan_from = steps // 3
    audio = [c["audio"] for c in clips if len(c["audio"]) > crop]
    t0 = time.time()
    step = 0
    for step in range(steps):
        elapsed = time.time() - t0
        if max_seconds is not None and elapsed > max_seconds:
            break
        batch_audio = []
        for _ in range(batch):
            x = audio[int(rng.integers(len(audio)))]
            s = int(rng.integers(0, len(x) - crop + 1))
            seg = x[s : s + crop]
            batch_audio.append(seg / (np.max(np.abs(seg)) + 1e-4) * rng.uniform(0.3, 0.9))
        x = torch.from_numpy(np.stack(batch_audio).astype(np.float32)).to(device)
        target = voc.logmel(x)
        y = voc(target)[:, : x.shape[1]]  # both vocoders return at least the input's length
        loss = stft_loss(y, x) + 0.5 * (voc.logmel(y) - target).abs().mean()
        adversarial = step >= gan_from if max_seconds is None else elapsed > max_seconds / 3
        if gan and adversarial:
            d_loss = 0.0
            for (real, _), (fake, _) in zip(disc(x), disc(y.detach())):
                d_loss = d_loss + torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            adv = 0.0
            fm = 0.0
            for (_, f_real), (fake, f_fake) in zip(disc(x), disc(y)):
                adv = adv + torch.relu(1 - fake).mean()
                fm = fm + sum((a.detach() - b).abs().mean() for a, b in zip(f_real, f_fake)) / len(f_real)
            loss = loss + adv + fm
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(voc.parameters(), 5.0)
        opt.step()
        if step % 200 == 0:
            log(f"{arch} vocoder step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
        if checkpoint is not None and step % 1000 == 999:
            checkpoint(voc, step + 1)
    voc.eval()
    voc.steps = step + 1
    voc.final_loss = float(loss.item())
    log(f"{arch} vocoder trained: {voc.steps} steps in {time.time() - t0:.0f}s, final loss {voc.final_loss:.3f}")
    return voc


def save_vocoder(voc, path, arch, size, **info):
    """Weights and the configuration that rebuilds them, in one torch file."""
    torch.save(dict(arch=arch, size=size, info=info, state={k: v.detach().cpu() for k, v in voc.state_dict().items()}), path)


def load_vocoder(path):
    d = torch.load(path, map_location="cpu", weights_only=True)
    voc = make_vocoder(d["arch"], d["size"])
    voc.load_state_dict(d["state"])
    voc.eval()
    voc.info = d["info"]
    voc.arch = d["arch"]
    return voc


def mel_distance(voc, clips, device="cpu"):
    """Mean absolute log-mel difference between clips and their resynthesis: the usual vocoder
    quality proxy (lower is closer to the original)."""
    d = []
    with torch.no_grad():
        for x in clips:
            t = torch.from_numpy(x.astype(np.float32))[None].to(device)
            t = t / (t.abs().max() + 1e-4) * 0.7
            m = voc.logmel(t)
            y = voc(m)[:, : t.shape[1]]
            d.append(float((voc.logmel(y)[..., : m.shape[-1]] - m).abs().mean()))
    return float(np.mean(d))


def resynthesise(voc, x):
    """Human waveform -> log-mel -> vocoder waveform (same length), level matched."""
    with torch.no_grad():
        t = torch.from_numpy(x.astype(np.float32))[None]
        peak = float(t.abs().max()) + 1e-4
        y = voc(voc.logmel(t / peak * 0.7))[0].numpy()
    y = y[: len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return (y * peak / 0.7).astype(np.float32)
