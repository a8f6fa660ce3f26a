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


class LogMel(nn.Module):
    def __init__(self):
        super().__init__()
        n_bins = N_FFT // 2 + 1
        window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        k = np.arange(n_bins)[:, None]
        n = np.arange(N_FFT)[None, :]
        cos = (np.cos(2 * math.pi * k * n / N_FFT) * window).astype(np.float32)
        sin = (-np.sin(2 * math.pi * k * n / N_FFT) * window).astype(np.float32)
        kernel = np.concatenate([cos, sin], axis=0)[:, None, :]  # [2*bins, 1, n_fft]
        self.register_buffer("dft", torch.from_numpy(kernel))
        self.register_buffer("mel", torch.from_numpy(mel_matrix()))
        self.n_bins = n_bins

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
        # Per-window cepstral-mean-style normalisation removes a fixed channel colouring.
        return logmel - logmel.mean(dim=2, keepdim=True)


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Detector(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.front = LogMel()
        w = width
        self.body = nn.Sequential(block(1, w), block(w, 2 * w), block(2 * w, 3 * w), block(3 * w, 4 * w))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, 1))

    def forward(self, audio):
        f = self.front(audio).unsqueeze(1)
        h = self.body(f)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(pooled).squeeze(1)
