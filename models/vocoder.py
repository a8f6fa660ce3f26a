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


def mel_basis():
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
    def __init__(self, ch, dilations=(1, 3, 9)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, 3, padding=d, dilation=d) for d in dilations)

    def forward(self, x):
        for c in self.convs:
            x = x + c(nn.functional.leaky_relu(x, 0.1))
        return x


class UpsampleVocoder(nn.Module):
    """HiFi-GAN/MelGAN-style generator: transposed-convolution upsampling (5 x 4 x 4 = HOP) with
    dilated residual blocks, straight to the waveform. Its traces (upsampling images, periodic
    artefacts at the frame rate) differ from the iSTFT vocoder's, so the two together cover both
    vocoder families that TTS systems end in."""

    def __init__(self, ch=64):
        super().__init__()
        self.register_buffer("mel", mel_basis())
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.inp = nn.Conv1d(N_MELS, ch, 7, padding=3)
        ups = []
        c = ch
        for k, s in ((10, 5), (8, 4), (8, 4)):
            ups += [nn.LeakyReLU(0.1), nn.ConvTranspose1d(c, c // 2, k, s, padding=(k - s) // 2), ResBlock(c // 2)]
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
        w = torch.hann_window(n_fft)
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


class MultiResDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.ds = nn.ModuleList(SpecDiscriminator(n, h) for n, h in ((128, 32), (256, 64), (512, 128)))

    def forward(self, y):
        return [d(y) for d in self.ds]


def train_vocoder(clips, steps, seed=0, log=print, arch="istft", gan=False):
    """Train on random 0.75 s crops of the given (TRAIN, human) clips for a fixed number of steps. With
    gan, a multi-resolution spectrogram discriminator (hinge loss plus feature matching, as in Vocos and
    HiFi-GAN) joins after the first third of the steps: adversarial training is what leaves the fine
    spectral traces of real GAN vocoders, which reconstruction losses alone smooth away."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    voc = Vocoder() if arch == "istft" else UpsampleVocoder()
    opt = torch.optim.AdamW(voc.parameters(), lr=1e-3)
    disc = MultiResDiscriminator() if gan else None
    opt_d = torch.optim.AdamW(disc.parameters(), lr=2e-4, betas=(0.8, 0.99)) if gan else None
    gan_from = steps // 3
    crop = 6000
    audio = [c["audio"] for c in clips if len(c["audio"]) > crop]
    t0 = time.time()
    for step in range(steps):
        batch = []
        for _ in range(12):
            x = audio[int(rng.integers(len(audio)))]
            s = int(rng.integers(0, len(x) - crop + 1))
            seg = x[s : s + crop]
            batch.append(seg / (np.max(np.abs(seg)) + 1e-4) * rng.uniform(0.3, 0.9))
        x = torch.from_numpy(np.stack(batch).astype(np.float32))
        target = voc.logmel(x)
        y = voc(target)[:, : x.shape[1]]  # both vocoders return at least the input's length
        loss = stft_loss(y, x) + 0.5 * (voc.logmel(y) - target).abs().mean()
        if gan and step >= gan_from:
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
    voc.eval()
    voc.steps = steps
    voc.final_loss = float(loss.item())
    log(f"{arch} vocoder trained: {steps} steps in {time.time() - t0:.0f}s, final loss {voc.final_loss:.3f}")
    return voc


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
