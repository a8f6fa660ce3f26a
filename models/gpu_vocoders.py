"""Train larger copy-synthesis vocoders on an accelerator (the twenty-fifth round's experiment).

The CPU recipe's vocoders (models/vocoder.py, 3000 steps of a 0.6M- or 67k-parameter net) never
sound like a real neural vocoder: the third, tenth and nineteenth rounds found that copy-synthesis
through them teaches the detector that one home-made vocoder, not the family. This script trains
Vocos- and HiFi-GAN-class vocoders of realistic size (1-3.4M parameters, HiFi-GAN's multi-period plus
Vocos' multi-resolution discriminators, batch 32 of 1 s crops) on the same TRAIN human clips, one
process per vocoder, all on one GPU for a fixed wall time. It is not part of `npm run model:train`:
the weights it writes are what `pipeline.py --vocoder-weights DIR` loads.

    python3 models/pipeline.py vocoder-data --extra-human --seen-systems chattts   # -> models/.cache/vocoder-data.npz
    python3 models/gpu_vocoders.py models/.cache/vocoder-data.npz OUTDIR --seconds 420

Each vocoder's weights are saved to OUTDIR/<name>.pt every 1000 steps and at the end, with the
steps, the wall time and the held-out mel distance (validation human clips) in the file and in
OUTDIR/<name>.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocoder  # noqa: E402

PERIODS = (2, 3, 5, 7, 11)
CONFIGS = {
    # Vocos-class: ConvNeXt backbone to STFT magnitude and phase, inverse STFT.
    "vocos-l": dict(arch="istft", size=dict(dim=256, layers=8), seed=11),
    # HiFi-GAN V1-class generator at 8 kHz (256 channels, multi-receptive-field fusion 3/7/11).
    "hifigan-l": dict(arch="upsample", size=dict(ch=256, kernels=[3, 7, 11]), seed=12),
    # HiFi-GAN V2-class: the same family at half the width.
    "hifigan-m": dict(arch="upsample", size=dict(ch=128, kernels=[3, 7, 11]), seed=13),
}


def load(path, part):
    d = np.load(path)
    audio, offsets = d[f"{part}_audio"], d[f"{part}_offsets"]
    return [audio[a:b].astype(np.float32) / 32768 for a, b in zip(offsets[:-1], offsets[1:])]


def one(args):
    cfg = CONFIGS[args.one]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    vocoder.MEL_BASIS = np.load(args.data)["mel_basis"]  # the GPU image has no librosa
    train = [dict(audio=a) for a in load(args.data, "train")]
    val = load(args.data, "val")
    path = os.path.join(args.out, f"{args.one}.pt")
    t0 = time.time()

    def save(voc, step, final=False):
        info = dict(name=args.one, steps=step, seconds=round(time.time() - t0, 1), device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    batch=args.batch, crop=args.crop, periods=list(PERIODS), trainClips=len(train))
        if final:
            was = voc.training
            voc.eval()
            info["valMelDistance"] = round(vocoder.mel_distance(voc, val, device), 4)
            voc.train(was)
        tmp = path + ".tmp"
        vocoder.save_vocoder(voc, tmp, cfg["arch"], cfg["size"], **info)
        os.replace(tmp, path)
        json.dump(info, open(os.path.join(args.out, f"{args.one}.json"), "w"), indent=1)
        print(args.one, json.dumps(info), flush=True)

    voc = vocoder.train_vocoder(train, 10**9, seed=cfg["seed"], arch=cfg["arch"], gan=True, size=cfg["size"], batch=args.batch, crop=args.crop,
                                disc_ch=32, periods=PERIODS, device=device, max_seconds=args.seconds, checkpoint=save,
                                log=lambda *a: print(args.one, *a, flush=True))
    save(voc, voc.steps, final=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--seconds", type=float, default=420)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=int, default=8000)  # vocoder-data's train excerpts are 1.5 s
    p.add_argument("--only", default=",".join(CONFIGS))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.one:
        return one(args)
    # One process per vocoder: the nets are small, so one alone leaves the GPU mostly idle.
    procs = [subprocess.Popen([sys.executable, __file__, args.data, args.out, "--seconds", str(args.seconds), "--batch", str(args.batch),
                               "--crop", str(args.crop), "--one", name]) for name in args.only.split(",")]
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()
