"""Telephone channel simulation, applied identically to human and synthetic audio, so the
model cannot tell the classes apart by source or channel (see corpus README caveats)."""
import numpy as np
import scipy.signal as sps

SR = 8000


def _mulaw_roundtrip(x):
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) * 127.5) / 127.5 - 1
    return np.sign(q) * (np.power(1 + mu, np.abs(q)) - 1) / mu


def _alaw_roundtrip(x):
    a = 87.6
    ax = np.abs(x)
    y = np.where(ax < 1 / a, a * ax / (1 + np.log(a)), (1 + np.log(np.maximum(a * ax, 1e-12))) / (1 + np.log(a)))
    y = np.sign(x) * y
    q = np.round((y + 1) * 127.5) / 127.5 - 1
    aq = np.abs(q)
    lim = 1 / (1 + np.log(a))
    z = np.where(aq < lim, aq * (1 + np.log(a)) / a, np.exp(aq * (1 + np.log(a)) - 1) / a)
    return np.sign(q) * z


def g711(x, law):
    return _mulaw_roundtrip(x) if law == "mulaw" else _alaw_roundtrip(x)


def packet_loss(x, rate, rng, frame=160):
    y = x.copy()
    last = np.zeros(frame)
    for i in range(0, len(y) - frame + 1, frame):
        if rng.random() < rate:
            y[i : i + frame] = last * np.linspace(1, 0.3, frame)  # repeat-and-fade concealment
        else:
            last = y[i : i + frame].copy()
    return y


def add_noise(x, snr_db, rng):
    p = np.mean(x**2) + 1e-10
    kind = rng.integers(3)
    n = rng.standard_normal(len(x))
    if kind == 1:  # pink-ish
        n = sps.lfilter([1], [1, -0.95], n)
    elif kind == 2:  # mains hum + harmonics
        t = np.arange(len(x)) / SR
        f0 = rng.choice([50.0, 60.0])
        n = sum(np.sin(2 * np.pi * f0 * h * t + rng.random() * 6) / h for h in (1, 2, 3)) + 0.1 * n
    n = n / (np.sqrt(np.mean(n**2)) + 1e-10)
    return x + n * np.sqrt(p / (10 ** (snr_db / 10)))


def bandlimit(x, rng):
    lo = rng.uniform(150, 350)
    hi = rng.uniform(3000, 3700)
    sos = sps.butter(4, [lo, hi], btype="band", fs=SR, output="sos")
    return sps.sosfilt(sos, x)


def normalise(x, target_dbfs):
    rms = np.sqrt(np.mean(x**2)) + 1e-9
    return x * (10 ** (target_dbfs / 20) / rms)


def line_impairments(x, rng, snr_db=None):
    """The telephone channel's line before its codec: random level, band limit, noise or hum, mild clipping."""
    x = normalise(x.astype(np.float64), rng.uniform(-30, -16))
    if rng.random() < 0.8:
        x = bandlimit(x, rng)
    if snr_db is not None:
        x = add_noise(x, snr_db, rng)
    elif rng.random() < 0.6:
        x = add_noise(x, rng.uniform(10, 30), rng)
    if rng.random() < 0.2:  # mild clipping / AGC overshoot
        g = rng.uniform(2, 6)
        x = np.tanh(x * g) / g
    return x


def telephone_channel(x, rng, law=None, loss=None, snr_db=None):
    """Random telephone channel. Explicit args fix one impairment (for robustness rows)."""
    x = line_impairments(x, rng, snr_db)
    law = law or rng.choice(["mulaw", "alaw"])
    x = g711(np.clip(x, -1, 1), law)
    if loss is not None:
        x = packet_loss(x, loss, rng)
    elif rng.random() < 0.4:
        x = packet_loss(x, rng.uniform(0.01, 0.05), rng)
    return x.astype(np.float32)


def rawboost(x, rng):
    """RawBoost-style data boosting (Tak et al., ICASSP 2022), applied to both classes before the
    channel: (1) linear convolutive noise - a random smooth spectral tilt/ripple of up to +-8 dB;
    (2) impulsive signal-dependent noise on 1-8 % of the samples; (3) mild non-linearity
    (a random odd polynomial). Each is applied with probability 1/2."""
    x = x.astype(np.float64)
    if rng.random() < 0.5:
        n_fft = 64
        knots = rng.uniform(-8, 8, size=6)
        gain_db = np.interp(np.linspace(0, 5, n_fft // 2 + 1), np.arange(6), knots)
        h = np.fft.irfft(10 ** (gain_db / 20), n_fft)
        h = np.roll(h, n_fft // 2) * np.hanning(n_fft)
        x = sps.fftconvolve(x, h, mode="same")
    if rng.random() < 0.5:
        p = rng.uniform(0.01, 0.08)
        idx = rng.random(len(x)) < p
        x = x.copy()
        x[idx] += x[idx] * rng.uniform(-1, 1, idx.sum()) * rng.uniform(0.1, 0.5)
    if rng.random() < 0.5:
        peak = np.max(np.abs(x)) + 1e-9
        u = x / peak
        a3 = rng.uniform(-0.3, 0.3)
        x = (u + a3 * u**3) * peak
    return x.astype(np.float32)


# Mobile and VoIP codecs on the caller's side, before the trunk's G.711. A mobile caller's speech is
# coded by AMR-NB (GSM/UMTS, and VoLTE when it falls back to narrowband) or, on older networks, GSM-FR,
# and transcoded to G.711 at the carrier's gateway; an app caller's often by Opus. These codecs are
# themselves speech models (CELP, RPE-LTP, SILK), so a detector that learnt "anything modelled is
# synthetic" would drop mobile callers. Each entry: (sox/ffmpeg encoder arguments, decoder arguments).
# sox runs with -R (repeatable): going from float to the codecs' 16-bit PCM, it dithers, and without -R
# it seeds the dither from the clock, so every run coded different audio (measured: three runs of one
# clip through AMR-NB gave three different streams). ffmpeg's Ogg stream serial is random too, but the
# decoded audio is the same each run.
MOBILE_CODECS = {
    "amr-nb-12.2": (["sox", "-R", "-t", "f32", "-r", "8000", "-c", "1", "-", "-t", "amr-nb", "-C", "7", "-"],
                    ["sox", "-R", "-t", "amr-nb", "-", "-t", "f32", "-"]),
    "amr-nb-4.75": (["sox", "-R", "-t", "f32", "-r", "8000", "-c", "1", "-", "-t", "amr-nb", "-C", "0", "-"],
                    ["sox", "-R", "-t", "amr-nb", "-", "-t", "f32", "-"]),
    "gsm-fr": (["sox", "-R", "-t", "f32", "-r", "8000", "-c", "1", "-", "-t", "gsm", "-"],
               ["sox", "-R", "-t", "gsm", "-r", "8000", "-c", "1", "-", "-t", "f32", "-"]),
    "opus-8k": (["ffmpeg", "-v", "error", "-f", "f32le", "-ar", "8000", "-ac", "1", "-i", "-", "-c:a", "libopus", "-b:a", "8k",
                 "-application", "voip", "-f", "ogg", "-"],
                ["ffmpeg", "-v", "error", "-i", "-", "-f", "f32le", "-ar", "8000", "-ac", "1", "-"]),
}


class CodecError(RuntimeError):
    pass


# Codecs run in-process through a shared library rather than a command: G.729 (ITU-T G.729 Annex A
# compatible CS-ACELP at 8 kbit/s, Belledonne's bcg729 from Debian's libbcg729-0), the codec that SIP
# trunks and enterprise links use most after G.711; a carrier that takes a call in G.729 transcodes it to
# G.711 toward voiceguard. Each entry: a function from 16-bit PCM (int16 array) to 16-bit PCM.
def _bcg729():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("bcg729") or "libbcg729.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise CodecError(f"g729: cannot load libbcg729 (Debian package libbcg729-0): {e}") from e
    lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
    lib.initBcg729EncoderChannel.argtypes = [ctypes.c_uint8]
    lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
    lib.bcg729Encoder.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8)]
    lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
    lib.closeBcg729DecoderChannel.argtypes = [ctypes.c_void_p]
    lib.bcg729Decoder.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_void_p]
    return lib


def g729_roundtrip(pcm, erased=None):
    """16-bit PCM through a fresh G.729 encoder (no VAD, so every 10 ms frame is a 10-byte speech frame)
    and decoder; the input is zero-padded to whole 80-sample frames and the output has its length.
    `erased` (booleans, one per 10 ms frame) marks frames lost on the way: the decoder conceals them."""
    import ctypes

    lib = _bcg729()
    n = (len(pcm) + 79) // 80
    frames = np.zeros(n * 80, dtype=np.int16)
    frames[: len(pcm)] = pcm
    out = np.zeros(n * 80, dtype=np.int16)
    enc = lib.initBcg729EncoderChannel(0)
    dec = lib.initBcg729DecoderChannel()
    if not enc or not dec:
        raise CodecError("g729: bcg729 could not open a channel")
    bits = (ctypes.c_uint8 * 10)()
    length = ctypes.c_uint8(0)
    try:
        for i in range(n):
            lib.bcg729Encoder(enc, frames[i * 80 :].ctypes.data, bits, ctypes.byref(length))
            if length.value != 10:
                raise CodecError(f"g729: the encoder gave a {length.value}-byte frame, not 10")
            lost = erased is not None and i < len(erased) and bool(erased[i])
            lib.bcg729Decoder(dec, bits, 10, 1 if lost else 0, 0, 0, out[i * 80 :].ctypes.data)
    finally:
        lib.closeBcg729EncoderChannel(enc)
        lib.closeBcg729DecoderChannel(dec)
    return out[: len(pcm)]


LIBRARY_CODECS = {"g729": g729_roundtrip}


def g729_trunk_channel(x, rng, draw=0):
    """A caller heard in G.729 end to end (the gateway's fallback codec path): the telephone channel's line
    impairments (same draws in the same order, so a seed gives the same line) and a loss draw, then 16 bits with the
    dither of `draw` (tpdf_quantise), G.729, and the lost 20 ms packets (two frames each) erased at the
    decoder, which conceals them as the relay's decoder does. No G.711 step. The output lags the input by
    G.729's 5 ms look-ahead (40 samples), as the audio the gateway decodes does."""
    x = np.clip(line_impairments(x, rng), -1, 1)
    rate = rng.uniform(0.01, 0.05) if rng.random() < 0.4 else 0.0
    packets = (len(x) + 159) // 160
    lost = rng.random(packets) < rate
    y = g729_roundtrip(tpdf_quantise(x, draw), np.repeat(lost, 2)).astype(np.float64) / 32768.0
    return y.astype(np.float32)
# The codecs of the evaluation's codec table (training's --mobile-codec and --codec-bounds use MOBILE_CODECS).
EVAL_CODECS = [*MOBILE_CODECS, *LIBRARY_CODECS]


def codec_commands(codec, draw=0):
    """The (encoder, decoder) commands of a MOBILE_CODECS entry for dither draw `draw`. Draw 0 is the entry
    as it stands: float input, quantised to 16 bits by the encoder (sox with -R: its one fixed dither
    sequence; libopus codes the float input). Draw k > 0 takes 16-bit input that mobile_codec has already
    quantised with its own seeded TPDF dither (see there), so the encoder adds none."""
    enc, dec = MOBILE_CODECS[codec]
    if draw == 0:
        return enc, dec
    swap = {("-t", "f32"): ("-t", "s16"), ("-f", "f32le"): ("-f", "s16le")}
    out, i = [], 0
    while i < len(enc):
        pair = tuple(enc[i : i + 2])
        if i < enc.index("-") and pair in swap:  # the input side only (before the first "-")
            out += list(swap[pair])
            i += 2
        else:
            out.append(enc[i])
            i += 1
    return out, dec


def tpdf_quantise(x, draw):
    """x (float, full scale 1) to 16-bit PCM with triangular (TPDF) dither of +-1 LSB from a generator
    seeded by `draw`: what sox does by default, but with a seed of ours, so each draw is repeatable."""
    rng = np.random.default_rng([0x5EED, draw])
    d = rng.uniform(-0.5, 0.5, len(x)) + rng.uniform(-0.5, 0.5, len(x))
    return np.clip(np.round(x * 32768.0 + d), -32768, 32767).astype("<i2")


def mobile_codec(x, codec, level_dbfs=-20.0, draw=0):
    """x (8 kHz float) through one of MOBILE_CODECS and back, at a speech level of `level_dbfs` (the
    codecs take 16-bit PCM; the channel re-normalises the level afterwards; None keeps x's level). The
    output has the input's length: the codec's delay is cut from the front and the end is padded.
    `draw` picks the dither going to 16 bits (codec_commands): a codec's search can flip on one least
    significant bit, so each draw codes slightly different audio, and the evaluation averages over draws."""
    import subprocess

    x = x.astype(np.float64)
    if level_dbfs is not None:
        x = normalise(x, level_dbfs)
    if codec in LIBRARY_CODECS:  # in-process, 16-bit in and out; every draw (0 too) is a seeded TPDF dither
        z = LIBRARY_CODECS[codec](tpdf_quantise(np.clip(x, -1, 1), draw)).astype(np.float64) / 32768.0
    else:
        enc, dec = codec_commands(codec, draw)
        y = np.clip(x, -1, 1).astype("<f4").tobytes() if draw == 0 else tpdf_quantise(np.clip(x, -1, 1), draw).tobytes()
        try:
            coded = subprocess.run(enc, input=y, capture_output=True, check=True, timeout=600).stdout
            out = subprocess.run(dec, input=coded, capture_output=True, check=True, timeout=600).stdout
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise CodecError(f"{codec}: {e}") from e
        z = np.frombuffer(out, dtype="<f4").astype(np.float64)
    if len(z) == 0:
        raise CodecError(f"{codec}: the decoder returned no audio")
    # The codec's delay (0-30 ms for these) by cross-correlation over the whole signal.
    n = min(len(x), len(z))
    xc = sps.correlate(z[:n], x[:n], mode="full", method="fft")[n - 1 : n - 1 + 800]
    d = int(np.argmax(xc))
    z = z[d : d + len(x)]
    if len(z) < len(x):
        z = np.concatenate([z, np.zeros(len(x) - len(z))])
    return z.astype(np.float32)


def mobile_codec_many(xs, codec, level_dbfs=-20.0, gap=4000, draw=0):
    """mobile_codec for many clips in one encoder/decoder run (a process start costs more than
    coding a clip): each clip at `level_dbfs`, joined with `gap` samples of silence, coded, split."""
    parts, offsets, pos = [], [], 0
    for x in xs:
        parts += [normalise(x.astype(np.float64), level_dbfs), np.zeros(gap)]
        offsets.append(pos)
        pos += len(x) + gap
    z = mobile_codec(np.concatenate(parts), codec, level_dbfs=None, draw=draw)
    return [z[o : o + len(x)] for o, x in zip(offsets, xs)]
