"""Twenty-eighth round (3), exploratory (EXPERIMENTS.md): how often models that never heard Tux Paint flag
and drop its nine languages' description clips (pipeline.tuxpaint_human, 687 clips), through the
evaluation's random G.711 channel (seed 123), at each model's own plain bounds.

Usage: python3 models/tuxpaint_probe.py REPO_DIR [REPO_DIR ...] [--out FILE]
(each REPO_DIR holds models/voiceguard-detector.onnx and .json; prints one JSON line per model). With --out
it writes {"clips", "channel", "models": {version: {language: {clips, flagged, dropped}}}} (counts); the
committed models/tuxpaint-probe.json is the shipped model's, which model_card.py renders into the card."""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline as p

args = sys.argv[1:]
out_file = None
if "--out" in args:
    i = args.index("--out")
    out_file = args[i + 1]
    del args[i : i + 2]
if not args:
    raise SystemExit(__doc__)
clips = p.tuxpaint_human()
langs = sorted({c["language"] for c in clips})
out = dict(clips=len(clips), channel="random G.711 telephone channel, seed 123", models={})
for repo in args:
    meta = json.load(open(os.path.join(repo, "models", "voiceguard-detector.json")))
    cal, d = meta["calibration"], meta["decision"]
    maxw = int((d["maxListenMs"] / 1000 * p.SR - p.WIN) // p.HOP + 1)
    run, _ = p.ort_runner(os.path.join(repo, "models", "voiceguard-detector.onnx"))
    ll = p.score_clips(run, clips, seed=123)
    llr = [cal["scale"] * l + cal["bias"] for l in ll]
    flagged = np.array([float(np.mean(x)) > 0 for x in llr])
    dropped = np.array([p.sprt(x, d["dropLlr"], d["humanLlr"], d["evidenceWeight"], maxw)[0] == "synthetic" for x in llr])
    rows = {}
    for lang in langs + ["all"]:
        idx = [i for i, c in enumerate(clips) if lang in ("all", c["language"])]
        rows[lang] = dict(clips=len(idx), flagged=int(flagged[idx].sum()), dropped=int(dropped[idx].sum()))
    out["models"][meta["version"]] = rows
    print(os.path.basename(os.path.normpath(repo)), meta["version"],
          json.dumps({k: dict(v, flaggedPct=round(100 * v["flagged"] / v["clips"], 1), droppedPct=round(100 * v["dropped"] / v["clips"], 1)) for k, v in rows.items()}), flush=True)
if out_file:
    json.dump(out, open(out_file, "w"), indent=1)
