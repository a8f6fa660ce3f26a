"""voiceguard detector pipeline: prepare data -> train -> export ONNX -> evaluate.

Usage: python3 models/pipeline.py all            (full recipe, CPU, writes models/voiceguard-detector.*)
       python3 models/pipeline.py prep           (only build the cached training data)
       python3 models/pipeline.py eval           (re-evaluate the committed model)
       python3 models/pipeline.py baseline --extra-human --seen-systems chattts  (the LFCC-GMM baseline beside it)
       python3 models/pipeline.py smoke --out D  (20 clips, 1 step, export + parity, into D)
Audio is read from ../shared/corpus (override with VOICEGUARD_CORPUS); generated and fetched
audio is cached under models/.cache (git-ignored). Nothing of the corpus is committed.
"""
import argparse
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from itertools import islice
from datetime import datetime, timezone

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from channel import rawboost, telephone_channel  # noqa: E402
import model_card  # noqa: E402
from net import Detector, RawDetector  # noqa: E402

SR = 8000
WIN = 8000  # model window and hop in samples; set from --window-s (the hop is half the window)
HOP = 4000
CORPUS = os.environ.get("VOICEGUARD_CORPUS", os.path.join(ROOT, "..", "shared", "corpus"))
CACHE = os.environ.get("VOICEGUARD_MODEL_CACHE", os.path.join(HERE, ".cache"))

# Whole TTS systems never seen in training. "val" picks the checkpoint, calibrates and sets thresholds;
# "test" is the report. A clip whose text group is shared with a test clip goes to test, so several
# jik876/hifi-gan-demo systems (same LJSpeech/VCTK sentences) are test-only or dropped. Two val splits:
# - "legacy" (model 1.1): val names hifigan-v2, stylespeech and espnet-fastspeech-wavenet, whose texts all
#   collide with test, so val really holds Mandarin VocGAN + 5 MelGAN clips (one language, one vocoder
#   family) and the 35 HiFi-GAN ablation clips fall out of every split.
# - "families": val takes the demo's HiFi-GAN/MelGAN ablation block (texts "as-*", not in test), Mandarin
#   VocGAN and a quarter of the gcin Mandarin phrases: two vocoder families and both languages. The three
#   colliding systems are named as test, so the test split is exactly the same in both.
BASE_TEST_SYSTEMS = {
    "chattts", "espnet-tacotron2-wavenet", "hifigan-v3", "waveglow", "mrmi-tts", "tacotron2-waveglow",
    "meta-stylespeech", "fastspeech2-speakerid", "local-flite",
}
SPLITS = {
    "legacy": dict(val={"hifigan-v2", "espnet-fastspeech-wavenet", "mandarin-fastspeech2-vocgan", "melgan", "stylespeech"},
                   test=BASE_TEST_SYSTEMS, gcin_val=False),
    "families": dict(val={"hifigan-ablation", "melgan", "mandarin-fastspeech2-vocgan"},
                     test=BASE_TEST_SYSTEMS | {"hifigan-v2", "espnet-fastspeech-wavenet", "stylespeech"}, gcin_val=True),
}
VAL_SYSTEMS, TEST_SYSTEMS, GCIN_VAL = SPLITS["legacy"]["val"], SPLITS["legacy"]["test"], False  # set from --val-split


def use_split(name):
    global VAL_SYSTEMS, TEST_SYSTEMS, GCIN_VAL
    VAL_SYSTEMS, TEST_SYSTEMS, GCIN_VAL = SPLITS[name]["val"], SPLITS[name]["test"], SPLITS[name]["gcin_val"]


# Seen-system protocol (--seen-systems): a test system whose attacks are known can be trained on in part,
# the way a deployed detector is retrained on every attack family it has met. Its remaining groups form
# the "seentest" split, reported apart from the unseen systems. The rule keeps text and speaker links
# inside one side: ChatTTS trains on shared script A and a hashed half of the second-batch voices (each
# with its own script); script B (voices also heard on script A, new text) and the other voices (new
# voice and text) are held out.
SEEN_RULES = {
    "chattts": lambda g: "seentest" if g == "chattts-text:B" or (g.startswith("chattts-p2:") and hsplit(g, 0.0, 0.5) == "test") else "train",
}
SEEN_SUBSETS = {  # how the evaluation labels each held-out group of a seen system
    "chattts": lambda g: "new text, voices also heard in training" if g == "chattts-text:B" else "new voice and new text",
}
SEEN_SYSTEMS = set()  # set from --seen-systems


def seen_sides(rows, system):
    """The groups of `system` on each side of its SEEN_RULES rule ({"train": ..., "seentest": ...}, a side
    may be missing in a subsample). Stops the run when a group is shared with another system, because
    the rule would then move that system's clips too."""
    sides, mine = {}, set()
    for r in rows:
        if r["system"] == system:
            sides.setdefault(SEEN_RULES[system](r["group"]), set()).add(r["group"])
            mine.add(r["group"])
    foreign = sorted({r["system"] for r in rows if r["group"] in mine and r["system"] != system})
    if foreign:
        raise SystemExit(f"seen-system rule for {system}: groups shared with {foreign}")
    return sides


# Related systems: a test system that shares an engine or a speaker with local synthesis the model trained on
# is no longer an unseen family. It stays out of training, but its clips move to the "relatedtest" split and
# are reported apart from the unseen systems, with the reason (set from the training data: see set_related).
RELATED_RULES = {
    "local-flite": ("local-festival", "flite is Festival's small sibling engine, and its slt voice is the speaker of Festival's slt HTS voice"),
}
RELATED_SYSTEMS = {}  # system -> reason


def set_related(trained_systems):
    """Mark the test systems related to a system in `trained_systems` (see RELATED_RULES)."""
    RELATED_SYSTEMS.clear()
    RELATED_SYSTEMS.update({k: why for k, (trained, why) in RELATED_RULES.items() if trained in trained_systems})


def local_split(system):
    """The split of a locally synthesised system's clips."""
    return "relatedtest" if system in RELATED_SYSTEMS else "test" if system in TEST_SYSTEMS else "train"


def related_split_check():
    """The smoke run's check of the related-system rule: flite is a test system, unless Festival is trained on."""
    saved = dict(RELATED_SYSTEMS)
    try:
        set_related({"local-festival"})
        with_festival = local_split("local-flite")
        set_related(set())
        without = local_split("local-flite")
    finally:
        RELATED_SYSTEMS.clear()
        RELATED_SYSTEMS.update(saved)
    if (with_festival, without) != ("relatedtest", "test"):
        raise SystemExit(f"related-system rule broken: local-flite goes to {with_festival} with festival, {without} without")
    return {"local-flite": {"withFestival": with_festival, "without": without}}


def set_seen(systems):
    unknown = set(systems) - set(SEEN_RULES)
    if unknown:
        raise SystemExit(f"--seen-systems: no held-out rule for {', '.join(sorted(unknown))} (known: {', '.join(sorted(SEEN_RULES))})")
    SEEN_SYSTEMS.clear()
    SEEN_SYSTEMS.update(systems)


# --gan-ablation: train on the HiFi-GAN demo's ablation block, its "as-*" sentences (LJSpeech voice): HiFi-GAN
# V3 without MPD/MSD/MRF/L1, MelGAN with HiFi-GAN's discriminators, and HiFi-GAN V1 on the same sentences. MelGAN's
# own as-* clips are dropped, so MelGAN, HiFi-GAN V2 and V3 stay unseen systems (of a vocoder family seen in training).
GAN_ABLATION_GROUPS = "hifigan-demo:as-"
GAN_ABLATION_TRAIN = {"hifigan-ablation", "hifigan-v1"}
GAN_ABLATION = False  # set from --gan-ablation


def gan_ablation_side(row):
    """With --gan-ablation: "train" or "drop" for a manifest row on the ablation sentences, else None."""
    if not row["group"].startswith(GAN_ABLATION_GROUPS):
        return None
    return "train" if row["system"] in GAN_ABLATION_TRAIN else "drop"

# Whole human sources/speakers held out: one FSDD speaker, a hashed third of LibriSpeech speakers and
# Tortoise reference voices, and part of the Mandarin syllable recordings.
HUMAN_TEST_GROUPS = {"fsdd:nicolas"}


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def hsplit(key, frac_val=0.15, frac_test=0.2):
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < frac_val else "test" if h < frac_val + frac_test else "train"


# ---------------------------------------------------------------- data

def load_corpus(limit=None):
    rows = list(csv.DictReader(open(os.path.join(CORPUS, "manifest.csv"), newline="")))
    if limit:
        rng = np.random.default_rng(0)
        rows = [rows[i] for i in rng.choice(len(rows), limit, replace=False)]
    group_split = {}
    for system in SEEN_SYSTEMS:
        seen_sides(rows, system)
    for r in rows:
        g = r["group"]
        if r["system"] in TEST_SYSTEMS:
            group_split[g] = "test"
        elif r["system"] in VAL_SYSTEMS and group_split.get(g) != "test":
            group_split[g] = "val"
    clips = []
    for r in rows:
        g = r["group"]
        split = group_split.get(g)
        if split is None:
            if r["label"] == "human" and (g in HUMAN_TEST_GROUPS or g.startswith(("librispeech:", "tortoise-voice:"))):
                split = "test" if g in HUMAN_TEST_GROUPS else hsplit(g)
            else:
                split = "train"
        side = gan_ablation_side(r) if GAN_ABLATION else None
        if side == "drop":
            continue
        if side == "train":
            split = "train"
        if r["label"] == "synthetic" and split != "train" and r["system"] not in VAL_SYSTEMS | TEST_SYSTEMS:
            continue  # a seen system's clip that shares text with held-out audio: keep it out of both
        if r["label"] == "synthetic" and split == "train" and r["system"] in VAL_SYSTEMS | TEST_SYSTEMS:
            split = "test" if r["system"] in TEST_SYSTEMS else "val"
        if r["system"] in SEEN_SYSTEMS:
            split = SEEN_RULES[r["system"]](g)
        x, sr = sf.read(os.path.join(CORPUS, r["path"]), dtype="float32")
        assert sr == SR, r["path"]
        clips.append(dict(audio=x, label=int(r["label"] == "synthetic"), system=r["system"], language=r["language"],
                          group=g, split=split, source=r["path"], license=r["license"]))
    return clips


def ensure_local_tts(wide=False, festival_only=False):
    """espeak-ng (en + Mandarin) and flite synthesis, cached; flite is held out as an unseen system.
    wide=True adds festival and more espeak-ng voices and texts (see wide_local_tts_jobs); with
    festival_only, only the festival clips of that set."""
    # "-r": made with sox's repeatable mode (below); an older cache made without it is not reused.
    out = os.path.join(CACHE, "local-tts-r")
    os.makedirs(out, exist_ok=True)
    texts_en = [
        "Hello, this is an important message about your account.", "Congratulations, you have been selected for a special offer.",
        "Please hold while we connect you to an agent.", "We are calling about your car's extended warranty.",
        "Press one to speak with a representative now.", "Your package could not be delivered today.",
        "This is a reminder about your appointment tomorrow morning.", "Can I speak to the person in charge of purchasing?",
        "Our records show that you are eligible for a lower interest rate.", "Thank you for your time, have a nice day.",
    ]
    texts_zh = ["您终于接电话了，我们这边是银行信用卡中心。", "您好，请问是王先生吗？我们有一个优惠活动。", "您的快递出现了问题，请按一号键。",
                "我们公司最近推出了新的理财产品，收益很高。", "请问您最近有贷款的需要吗？", "感谢您的接听，祝您生活愉快。"]
    jobs = []
    rng = np.random.default_rng(1)
    en_voices = ["en-us", "en", "en-gb-x-rp", "en-us+f3", "en-us+m3", "en+f2", "en+m7", "en-gb-scotland"]
    for i in range(60):
        t = texts_en[i % len(texts_en)]
        v = en_voices[i % len(en_voices)]
        jobs.append(("espeak-ng", "en", ["espeak-ng", "-v", v, "-s", str(int(rng.integers(130, 190))), "-p", str(int(rng.integers(30, 70))), "-w"], t))
    for i in range(40):
        t = texts_zh[i % len(texts_zh)]
        v = ["cmn", "cmn+f3", "cmn+m3", "cmn+f2"][i % 4]
        jobs.append(("espeak-ng", "zh", ["espeak-ng", "-v", v, "-s", str(int(rng.integers(120, 180))), "-p", str(int(rng.integers(30, 70))), "-w"], t))
    for i, v in enumerate(["kal", "kal16", "awb", "rms", "slt"] * 6):
        jobs.append(("local-flite", "en", ["flite", "-voice", v, "-o"], texts_en[i % len(texts_en)]))
    n_basic = len(jobs)  # the basic set's file names and groups stay as they were before the wide set
    if wide:
        jobs += [j for j in wide_local_tts_jobs() if j[0] == "local-festival" or not festival_only]
    clips = []
    for i, (system, lang, cmd, text) in enumerate(jobs):
        name = f"{system}-{i}" if i < n_basic else f"{system}-w{i}"
        path = os.path.join(out, f"{name}.wav")
        if not os.path.exists(path):
            try:
                raw = path + ".raw.wav"
                synthesise(system, cmd, text, raw)
                # -R: sox dithers on the way to 16 bits, and without -R it seeds the dither from the clock, so each
                # machine made different audio of the same text (flite is a test system).
                subprocess.run(["sox", "-R", raw, "-r", "8000", "-c", "1", "-b", "16", path, "silence", "1", "0.05", "-50d", "reverse", "silence", "1", "0.05", "-50d", "reverse"], check=True, capture_output=True)
                os.remove(raw)
            except (OSError, subprocess.CalledProcessError) as e:
                if i >= n_basic:  # the wide/festival set is a recipe choice: a missing engine or voice must not shrink it silently
                    raise SystemExit(f"--local-tts {LOCAL_TTS}: {system} failed ({e}); install festival festvox-kdlpc16k festvox-us-slt-hts espeak-ng")
                log("local tts skipped:", system, e)
                continue
        x, _ = sf.read(path, dtype="float32")
        split = local_split(system)
        group = f"{system}:{i % 10}" if i < n_basic else f"{system}:w{i % 10}"
        clips.append(dict(audio=x, label=1, system=system, language=lang, group=group, split=split, source=path, license="generated"))
    return clips


def synthesise(system, cmd, text, raw):
    """Run one local TTS job (see ensure_local_tts) into the WAV file raw, at the engine's own rate."""
    if system == "local-flite":
        subprocess.run(cmd + [raw, "-t", text], check=True, capture_output=True)
    elif system == "local-festival":
        txt = raw + ".txt"
        open(txt, "w").write(text + "\n")
        subprocess.run(cmd + [txt, "-o", raw], check=True, capture_output=True, timeout=120)
        os.remove(txt)
    else:  # espeak-ng: cmd ends with its -w flag
        subprocess.run(cmd[:-1] + ["-w", raw, text], check=True, capture_output=True)


# --local-tts wide: what issue 2 names beyond the basic set. Festival (the ked diphone voice and the slt
# HTS voice; kal is left out because flite's held-out kal voice is the same diphone database), and
# espeak-ng with its voice variants, reading the transcripts of Asterisk's English prompts (the human
# training speaker's own texts, so text content cannot stand in for the label) and Mandarin sentences
# from Debian's fortunes-zh. Both text sources are fetched with apt-get download like the human data.
TEXT_PACKAGES = ["asterisk-core-sounds-en", "fortunes-zh"]
FESTIVAL_VOICES = ["ked_diphone", "cmu_us_slt_arctic_hts"]
ESPEAK_VARIANTS = ["f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "klatt", "klatt2", "klatt3", "klatt4",
                   "Andy", "Annie", "Denis", "Gene", "Lee", "Mike", "max", "paul", "rob", "steph", "victor", "zac"]
LOCAL_TTS = "basic"  # set from --local-tts


def local_tts_texts():
    """(English prompt transcripts, Mandarin sentences), deterministic order."""
    import gzip
    import re

    tree = ensure_debian(TEXT_PACKAGES, "texts")
    if tree is None:
        raise SystemExit(f"--local-tts wide needs {' '.join(TEXT_PACKAGES)} (apt-get download failed)")
    en = []
    with gzip.open(os.path.join(tree, "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"), "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                t = line.split(":", 1)[1].strip()
                if 25 <= len(t) <= 160 and not re.search(r"[\[\]<>]", t):
                    en.append(t)
    zh = []
    for name in ("chinese.u8", "tang300.u8", "song100.u8"):
        raw = open(os.path.join(tree, "usr/share/games/fortunes", name), encoding="utf-8", errors="replace").read()
        raw = re.sub(r"\x1b\[[0-9;]*m", "", raw)
        for entry in raw.split("\n%"):
            # Lines are wrapped mid-sentence: drop titles, authors and attributions, then join the rest.
            body = "".join(l.strip() for l in entry.splitlines() if l.strip() and not re.search(r"[《》]|^作者|^--", l.strip()))
            for sent in re.split(r"[。！？；]", body):
                sent = sent.strip(" ，、：　")
                cjk = len(re.findall(r"[\u4e00-\u9fff]", sent))
                if 8 <= cjk <= 40 and not re.search(r"[A-Za-z0-9]", sent) and cjk >= 0.8 * len(sent):
                    zh.append(sent)
    if len(en) < 100 or len(zh) < 100:
        raise SystemExit(f"local TTS texts: only {len(en)} English and {len(zh)} Mandarin sentences found under {tree}")
    return en, zh


def wide_local_tts_jobs():
    en, zh = local_tts_texts()
    rng = np.random.default_rng(3)
    jobs = []
    for i in range(60):  # festival, 30 clips per voice, slight tempo variation
        v = FESTIVAL_VOICES[i % len(FESTIVAL_VOICES)]
        stretch = float(rng.uniform(0.85, 1.2))
        expr = f"(begin (voice_{v}) (Parameter.set 'Duration_Stretch {stretch:.2f}))"
        jobs.append(("local-festival", "en", ["text2wave", "-eval", expr], en[int(rng.integers(len(en)))]))
    for i in range(80):
        v = ["en-us", "en", "en-gb-x-rp", "en-029", "en-gb-x-gbclan"][i % 5] + "+" + ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
        jobs.append(("espeak-ng", "en", ["espeak-ng", "-v", v, "-s", str(int(rng.integers(120, 200))), "-p", str(int(rng.integers(25, 75))), "-w"],
                     en[int(rng.integers(len(en)))]))
    for i in range(80):
        v = "cmn+" + ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
        jobs.append(("espeak-ng", "zh", ["espeak-ng", "-v", v, "-s", str(int(rng.integers(110, 190))), "-p", str(int(rng.integers(25, 75))), "-w"],
                     zh[int(rng.integers(len(zh)))]))
    return jobs


# The base human recordings: Asterisk's English prompts (8 kHz, one speaker) and gcin's Mandarin syllables.
# They are fetched like EXTRA_HUMAN_PACKAGES, not read from an installed system, so a fresh machine trains
# and evaluates on the same clips as the machine that built the committed model.
BASE_HUMAN_PACKAGES = ["asterisk-core-sounds-en-wav", "gcin-voice"]


def local_human():
    """Human recordings from Debian packages: Asterisk prompts (en) and gcin Mandarin syllables."""
    tree = ensure_debian(BASE_HUMAN_PACKAGES, "base")
    if tree is None:
        raise SystemExit(f"cannot fetch {' '.join(BASE_HUMAN_PACKAGES)} with apt-get download; training and evaluation "
                         "need them (the run would otherwise use different human data from the committed model)")
    share = os.path.join(tree, "usr", "share")
    clips = []
    for d in sorted(glob.glob(os.path.join(share, "asterisk", "sounds", "en_*"))):
        files = sorted(glob.glob(os.path.join(d, "*.wav")))
        for f in files[:120]:
            try:
                x, sr = sf.read(f, dtype="float32")
            except Exception:
                continue
            if sr != SR or len(x) < 4000:
                continue
            speaker = os.path.basename(d)
            clips.append(dict(audio=x, label=0, system="asterisk-prompts", language="en", group=f"asterisk:{speaker}",
                              split="train", source=os.path.relpath(f, tree), license="CC-BY-SA-3.0"))
    # The package's postinst links /usr/share/gcin/ogg to this folder; the unpacked tree has only the folder.
    syl = sorted(glob.glob(os.path.join(share, "gcin-voice", "ogg", "*", "*.ogg")))
    if not syl:
        raise SystemExit(f"gcin-voice unpacked under {tree} holds no syllables")
    import librosa

    rng = np.random.default_rng(2)
    for i in range(80):
        parts = []
        for f in rng.choice(syl, int(rng.integers(6, 12))):
            y, _ = librosa.load(f, sr=SR)
            parts += [y, np.zeros(int(rng.integers(200, 1200)), dtype=np.float32)]
        x = np.concatenate(parts).astype(np.float32)
        split = "test" if i % 4 == 0 else "val" if i % 4 == 1 and GCIN_VAL else "train"
        clips.append(dict(audio=x, label=0, system="gcin-syllables", language="zh", group=f"gcin:{split}",
                          split=split, source="gcin-voice", license="LGPL"))
    log("base human recordings:", {k: sum(1 for c in clips if c["system"] == k) for k in ("asterisk-prompts", "gcin-syllables")})
    return clips


# Human recordings in Debian packages beyond the Asterisk English prompts and gcin: other languages'
# Asterisk prompts (fr-CA, es-MX, ru, it: five more speakers), KTuberling's spoken words in ~20
# languages, KLettres' syllables read by native speakers, and Hedgewars' acted voice packs (shouted game
# lines; the "Robot" pack is processed and left out). Without them every non-English human in training is
# a gcin syllable, while Mimic 3 speaks 25 languages, all synthetic: language would stand in for label.
EXTRA_HUMAN_PACKAGES = ["asterisk-core-sounds-fr-wav", "asterisk-core-sounds-es-wav", "asterisk-core-sounds-ru-wav",
                        "asterisk-core-sounds-it-wav", "asterisk-prompt-it-menardi-wav", "ktuberling-data", "klettres-data",
                        "hedgewars-data"]


def ensure_debian(packages, name):
    """Fetch (apt-get download) and unpack (dpkg-deb -x) Debian packages under the cache, into a tree of
    their own (`name`) so that one set's files never show up in another's globs; nothing is installed and
    no maintainer script runs. Returns the unpacked root, or None when a package cannot be fetched (the
    run says which)."""
    root = os.path.join(CACHE, "debian")
    debs = os.path.join(root, "debs")
    tree = os.path.join(root, f"tree-{name}")
    os.makedirs(debs, exist_ok=True)
    os.makedirs(tree, exist_ok=True)
    for pkg in packages:
        found = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        if not found:
            try:
                subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True, timeout=900)
            except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                log(f"cannot fetch {pkg} ({e})")
                return None
            found = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        marker = os.path.join(tree, f".unpacked-{pkg}")
        if not os.path.exists(marker):
            for deb in found:
                subprocess.run(["dpkg-deb", "-x", deb, tree], check=True, capture_output=True)
            open(marker, "w").close()
    return tree


def ensure_debian_human():
    """EXTRA_HUMAN_PACKAGES fetched and unpacked (see ensure_debian); None when one cannot be fetched."""
    tree = ensure_debian(EXTRA_HUMAN_PACKAGES, "extra")
    if tree is None:
        log("the extra human recordings are needed for --extra-human and the held-out multilingual human set")
    return tree


def _read_8k(path):
    import librosa

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return x if sr == SR else librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)


def _joined(files, rng, n_clips, lo, hi, gap=(800, 3200)):
    """Clips of lo..hi short recordings of one speaker/voice joined with pauses of 0.1-0.4 s (words and
    syllables are too short for a 1 s window on their own)."""
    out = []
    if len(files) < lo:
        return out
    for _ in range(n_clips):
        parts = []
        for f in rng.choice(files, int(rng.integers(lo, hi + 1)), replace=len(files) < hi):
            try:
                y = _read_8k(f)
            except Exception:
                continue
            parts += [y, np.zeros(int(rng.integers(*gap)), dtype=np.float32)]
        if parts:
            out.append(np.concatenate(parts).astype(np.float32))
    return out


def _consecutive(files, rng, tail=None):
    """Clips of consecutive recordings (those of at least 0.3 s), in the given order, joined with 0.2-0.5 s
    pauses until they hold at least 6 s of speech; a last, shorter clip is kept when it holds `tail` samples.
    A generator: a caller that needs only the first few clips (itertools.islice) reads only their files."""
    cur, n = [], 0
    for i, f in enumerate(files):
        y = _read_8k(f)
        if len(y) >= 2400:
            cur += [y, np.zeros(int(rng.integers(1600, 4000)), dtype=np.float32)]
            n += len(y)
        if n >= 6 * SR or (tail is not None and i == len(files) - 1 and n >= tail):
            yield np.concatenate(cur).astype(np.float32)
            cur, n = [], 0


# Held out of training whatever the flags: one Asterisk speaker and every third KTuberling/KLettres
# language and Hedgewars voice. They form the "xtest" split: unseen human speakers in ~15 languages, on
# which the evaluation reports how often a real caller would be flagged (the main test split is unchanged).
XTEST_ASTERISK = {"it_IT_m_Carlo"}


def extra_human():
    """Human clips from EXTRA_HUMAN_PACKAGES (see above), grouped by speaker or language: split "train",
    or "xtest" for the held-out speakers and languages (XTEST_ASTERISK, every third language/voice)."""
    tree = ensure_debian_human()
    if tree is None:
        return []
    rng = np.random.default_rng(3)
    share = os.path.join(tree, "usr", "share")
    clips = []

    def add(x, system, lang, group, source, lic, held_out):
        if len(x) >= 4000:
            clips.append(dict(audio=x, label=0, system=system, language=lang, group=group, split="xtest" if held_out else "train",
                              source=source, license=lic))

    for d in sorted(glob.glob(os.path.join(share, "asterisk", "sounds", "*_*"))):
        speaker = os.path.basename(d)  # e.g. fr_CA_f_June
        for f in sorted(glob.glob(os.path.join(d, "*.wav")))[:120]:
            add(_read_8k(f), "asterisk-prompts", speaker[:2], f"asterisk:{speaker}", f, "CC-BY-SA-3.0", speaker in XTEST_ASTERISK)
    # KTuberling's sr@latin etc. are the same recordings as sr: one per language code.
    kt = [d for d in sorted(glob.glob(os.path.join(share, "ktuberling", "sounds", "*"))) if os.path.isdir(d) and "@" not in d]
    for i, d in enumerate(kt):
        lang = os.path.basename(d)
        for x in _joined(sorted(glob.glob(os.path.join(d, "*.*"))), rng, 12, 3, 6):
            add(x, "ktuberling-words", lang, f"ktuberling:{lang}", d, "GPL-2.0+", i % 3 == 2)
    for i, d in enumerate(sorted(glob.glob(os.path.join(share, "klettres", "*", "syllab")))):
        lang = d.split(os.sep)[-2]
        for x in _joined(sorted(glob.glob(os.path.join(d, "*.ogg"))), rng, 8, 6, 10):
            add(x, "klettres-syllables", lang, f"klettres:{lang}", d, "GPL-2.0+", i % 3 == 2)
    voices = [d for d in sorted(glob.glob(os.path.join(share, "games", "hedgewars", "Data", "Sounds", "voices", "*")))
              if not os.path.basename(d).lower().startswith("robot")]
    for i, d in enumerate(voices):
        voice = os.path.basename(d)
        for x in _joined(sorted(glob.glob(os.path.join(d, "*.ogg"))), rng, 4, 3, 5):
            add(x, "hedgewars-voices", "und", f"hedgewars:{voice}", d, "GPL-2.0", i % 3 == 2)
    counts = {}
    for c in clips:
        k = f"{c['split']}/{c['system']}"
        counts[k] = counts.get(k, 0) + 1
    log("extra human recordings:", counts)
    return clips


def copy_synthesis(human_train, rng, limit):
    """Vocoded spoofs (Wang & Yamagishi 2023): human audio resynthesised by simple vocoders, labelled
    synthetic. Speaker, text and channel match the human original, so only vocoder traces differ."""
    import librosa

    out = []
    pick = rng.choice(len(human_train), min(limit, len(human_train)), replace=False)
    for n, i in enumerate(pick):
        c = human_train[i]
        x = c["audio"][: SR * 6]
        kind = ["stft-gl", "mel-gl", "lpc"][n % 3]
        # Griffin-Lim starts from random phases. Unseeded, librosa draws them from fresh OS entropy
        # (np.random.default_rng()), so every data preparation made different vocoded clips and a
        # rebuilt model trained on other data (found in the thirtieth round). Seeded by the clip's
        # position in the pick, it repeats without taking draws from `rng`. mel_to_audio does not
        # pass random_state on, hence mel_to_stft + griffinlim (what mel_to_audio does inside).
        if kind == "stft-gl":
            S = np.abs(librosa.stft(x, n_fft=256, hop_length=64))
            y = librosa.griffinlim(S, n_iter=24, hop_length=64, n_fft=256, random_state=n)
        elif kind == "mel-gl":
            M = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=256, hop_length=64, n_mels=64)
            S = librosa.feature.inverse.mel_to_stft(M, sr=SR, n_fft=256)
            y = librosa.griffinlim(S, n_iter=24, hop_length=64, n_fft=256, random_state=n)
        else:
            y = lpc_resynth(x, rng)
        y = y.astype(np.float32)
        y *= (np.sqrt(np.mean(x**2)) + 1e-9) / (np.sqrt(np.mean(y**2)) + 1e-9)
        # origin: the human audio it was made from, sample-aligned (for --pair-loss).
        out.append(dict(audio=y, label=1, system=f"vocoded-{kind}", language=c["language"], group=c["group"],
                        split="train", source=c["source"], license=c["license"], origin=x))
    return out


def neural_copy_synthesis(human_train, rng, limit, steps, archs, gan=False, weights=None):
    """Copy-synthesis through small neural vocoders trained here on the TRAIN human clips only
    (models/vocoder.py): a Vocos-style iSTFT vocoder and/or a HiFi-GAN-style upsampling one. Each
    resynthesises its share of `limit` clips, labelled synthetic as system "vocoded-neural-<arch>" (with
    a "-gan" suffix when the vocoders are trained against a discriminator). With weights (a folder of
    models/gpu_vocoders.py's .pt files, trained on the same TRAIN human clips), those vocoders are
    loaded instead of trained, and their clips are systems "vocoded-neural-<name>"."""
    from vocoder import load_vocoder, resynthesise, train_vocoder

    pick = rng.choice(len(human_train), min(limit, len(human_train)), replace=False)

    sources = vocoder_weight_files(weights) if weights else archs
    out = []
    for a, source in enumerate(sources):
        if weights:
            voc = load_vocoder(source)
            log(f"loaded copy-synthesis vocoder {voc.info['name']} ({voc.arch}, {voc.info['steps']} steps on {voc.info['device']}, "
                f"held-out mel distance {voc.info.get('valMelDistance')})")
            system = f"vocoded-neural-{voc.info['name']}"
        else:
            log(f"training the {source} copy-synthesis vocoder ({steps} steps) on {len(human_train)} human train clips")
            voc = train_vocoder(human_train, steps, seed=a, log=log, arch=source, gan=gan)
            system = f"vocoded-neural-{source}{'-gan' if gan else ''}"
        for i in pick[a :: len(sources)]:
            c = human_train[i]
            x = c["audio"][: SR * 6]
            # origin: the human audio it was made from, sample-aligned (for --pair-loss --pair-from neural).
            out.append(dict(audio=resynthesise(voc, x), label=1, system=system, language=c["language"],
                            group=c["group"], split="train", source=c["source"], license=c["license"], origin=x))
    log(f"neural copy-synthesis: {len(out)} clips from {len(sources)} vocoders" + ("" if weights else f" ({steps} steps each: {', '.join(archs)})"))
    return out


def vocoder_weight_files(folder):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".pt"))
    if not files:
        raise SystemExit(f"--vocoder-weights {folder}: no .pt files (models/gpu_vocoders.py writes them)")
    return files


def write_vocoder_data(clips, path, train_s=1.5, val_s=4.0, val_clips=64):
    """The TRAIN human clips (what the vocoders may learn from) and the validation human clips (for
    their held-out quality) as 16-bit PCM, for models/gpu_vocoders.py on another machine. To fit the
    device tool's 64 MiB, each train clip gives one excerpt of train_s seconds (at a seeded random
    offset: every clip, so every speaker and source, is kept), and val_clips validation clips give
    their first val_s seconds."""
    rng = np.random.default_rng(25)
    parts = {}

    def excerpt(x, n):
        s = int(rng.integers(0, len(x) - n + 1)) if len(x) > n else 0
        return x[s : s + n]

    val = [c for c in clips if c["split"] == "val" and c["label"] == 0]
    val = [val[i] for i in sorted(rng.choice(len(val), min(val_clips, len(val)), replace=False))]
    for part, chosen, n in (("train", [c for c in clips if c["split"] == "train" and c["label"] == 0], int(train_s * SR)),
                            ("val", val, int(val_s * SR))):
        audio = [np.clip(np.round(excerpt(c["audio"], n) * 32768), -32768, 32767).astype(np.int16) for c in chosen]
        parts[f"{part}_audio"] = np.concatenate(audio)
        parts[f"{part}_offsets"] = np.concatenate([[0], np.cumsum([len(a) for a in audio])]).astype(np.int64)
        log(f"vocoder data: {len(audio)} {part} human clips, {len(parts[f'{part}_audio']) / SR / 60:.1f} minutes")
    from vocoder import mel_basis

    parts["mel_basis"] = mel_basis().numpy()
    np.savez(path, **parts)


def lpc_resynth(x, rng, order=12, frame=160):
    import librosa
    import scipy.signal as sps

    y = np.zeros_like(x)
    phase = 0.0
    for s in range(0, len(x) - frame, frame):
        seg = x[s : s + frame] * np.hanning(frame)
        if np.sum(seg**2) < 1e-8:
            continue
        a = librosa.lpc(seg.astype(np.float64) + 1e-9 * rng.standard_normal(frame), order=order)
        res = sps.lfilter(a, [1], x[s : s + frame])
        # crude voicing: autocorrelation peak in 60-400 Hz
        ac = np.correlate(seg, seg, "full")[frame - 1 :]
        lag = int(np.argmax(ac[20:133]) + 20)
        voiced = ac[lag] > 0.3 * ac[0]
        exc = np.zeros(frame)
        if voiced:
            while phase < frame:
                exc[int(phase)] = 1.0
                phase += lag
            phase -= frame
        else:
            exc = rng.standard_normal(frame)
        exc *= np.sqrt(np.mean(res**2) / (np.mean(exc**2) + 1e-12))
        y[s : s + frame] = sps.lfilter([1], a, exc)
    return y


# Tux Paint's spoken stamp descriptions (tuxpaint-stamps-default, GPL-2): short phrases ("a red apple")
# recorded at home by one volunteer per language (credited in its changelog: Bulgarian Krasimir Petkov,
# Belarusian Kseniya Buraya, Spanish Estefania Ortiz, Greek Kiriaki Serafeim, Danish Joe Dalton, French
# Jacques Chion and PaulK, Romanian Tabbytha, Russian Edwin Veber; Catalan uncredited). Nine languages of
# several hundred files each; the few-file languages (Dutch and Lithuanian numbers, Malayalam, English)
# are left out. With --tuxpaint (twenty-eighth round) six languages train and three join the validation
# humans, each its own population for the drop bound.
TUXPAINT_PACKAGES = ["tuxpaint-stamps-default"]
TUXPAINT_SPLIT = {"fr": "train", "ru": "train", "ro": "train", "es": "train", "ca": "train", "da": "train",
                  "el": "val", "be": "val", "bg": "val"}  # Danish gives only 47 clips: too few for a population of its own
TUXPAINT_CLIPS = 80  # per language


def tuxpaint_human(per_language=TUXPAINT_CLIPS):
    """Clips of one language's descriptions in file order (_consecutive, no short tail), the first
    `per_language` of each; split by language (TUXPAINT_SPLIT)."""
    tree = ensure_debian(TUXPAINT_PACKAGES, "tuxpaint")
    if tree is None:
        raise SystemExit(f"cannot fetch {' '.join(TUXPAINT_PACKAGES)} with apt-get download (needed by --tuxpaint)")
    root = os.path.join(tree, "usr", "share", "tuxpaint", "stamps")
    rng = np.random.default_rng(7)
    clips = []
    for lang, split in sorted(TUXPAINT_SPLIT.items()):
        files = sorted(glob.glob(os.path.join(root, "**", f"*_desc_{lang}.ogg"), recursive=True))
        for x in islice(_consecutive(files, rng), per_language):
            clips.append(dict(audio=x, label=0, system="tuxpaint-descriptions", language=lang, group=f"tuxpaint:{lang}", split=split,
                              source=os.path.relpath(root, tree), license="GPL-2.0"))
    log("Tux Paint descriptions:", dict(Counter(f"{c['split']}/{c['language']}" for c in clips)))
    return clips


# ---------------------------------------------------------------- training

from channel import EVAL_CODECS, MOBILE_CODECS, g729_roundtrip, g729_trunk_channel, line_impairments, mobile_codec_many, tpdf_quantise  # noqa: E402  (below the marker: the prepared-data cache key hashes the code above it)

# (Held-out evaluation data that prepare() never touches, so it sits below the marker that keys the
# prepared-data cache.) Acted dialogue from Fish Fillets NG's Czech and Dutch dubs (fillets-ng-data-cs, -nl; GPL-2.0): about 100 and
# 90 minutes of two voice actors each (the small fish "m" and the big fish "v", named in each file name) and a
# few minor characters. Never trained on. They enlarge the held-out human sets where they were thinnest:
# the 259 validation humans that calibration and the drop bound are fitted on (Czech) and the other-language
# test humans (Dutch). One language each, so validation and test share no voice.
DIALOGUE_HUMAN_PACKAGES = ["fillets-ng-data-cs", "fillets-ng-data-nl"]
DIALOGUE_SPLIT = {"cs": "val", "nl": "xtest"}


def human_held_out():
    """The held-out human groups, as the model's JSON and card name them."""
    return ("fsdd:nicolas; hashed 35% of librispeech and tortoise-voice speaker groups (15% val, 20% test); gcin Mandarin phrases ("
            + ("1/4 val, " if GCIN_VAL else "") + "1/4 test); Fish Fillets NG acted dialogue: Czech (val), Dutch (other-language test)")


def dialogue_human():
    """Clips of one character's consecutive lines within one game level (_consecutive; a tail of 3-6 s is
    kept); split by language (DIALOGUE_SPLIT)."""
    tree = ensure_debian(DIALOGUE_HUMAN_PACKAGES, "dialogue")
    if tree is None:
        raise SystemExit(f"cannot fetch {' '.join(DIALOGUE_HUMAN_PACKAGES)} with apt-get download; the held-out human "
                         "sets need them (without them calibration and the drop bound would be fitted on other data)")
    root = os.path.join(tree, "usr", "share", "games", "fillets-ng", "sound")
    rng = np.random.default_rng(5)
    clips = []
    for lang, split in sorted(DIALOGUE_SPLIT.items()):
        for level in sorted(os.listdir(root)):
            by_voice = {}
            for f in sorted(glob.glob(os.path.join(root, level, lang, "*.ogg"))):
                parts = os.path.basename(f)[:-4].split("-")  # level-voice-line, e.g. bar-m-dost0
                if len(parts) >= 3 and parts[0] and parts[1]:
                    by_voice.setdefault(parts[1], []).append(f)
            for voice, files in sorted(by_voice.items()):
                for x in _consecutive(files, rng, tail=3 * SR):
                    clips.append(dict(audio=x, label=0, system="fillets-dialogues", language=lang, group=f"fillets:{lang}:{voice}", split=split,
                                      source=os.path.relpath(os.path.join(root, level, lang), tree), license="GPL-2.0"))
    counts = {}
    for c in clips:
        counts[c["group"]] = counts.get(c["group"], 0) + 1
    log("acted dialogue (held out):", {k: v for k, v in sorted(counts.items()) if v >= 20}, "+", sum(v for v in counts.values() if v < 20), "clips of minor voices")
    return clips



def random_crop(x, rng, n=None):
    n = WIN if n is None else n
    if len(x) < n:
        x = np.tile(x, int(np.ceil(n / len(x))) + 1)
    s = int(rng.integers(0, len(x) - n + 1))
    return x[s : s + n]


VOCODED_SHARE = 0.0  # set from --vocoded-share: part of the synthetic draws taken from copy-synthesis


SYSTEM_WEIGHTING = "uniform"  # set from --system-weighting

# --speed-perturb P: with probability P a training crop, of either class, is resampled by a ratio
# from SPEED_RATIOS (about +-5 and +-10 %, Kaldi-style speed perturbation). It moves pitch, formants
# and tempo together, so a voice heard only on one side of the label (the LJSpeech voice of the
# HiFi-GAN ablation clips, say) is no longer one fixed point the net can key on.
SPEED_PERTURB = 0.0
SPEED_RATIOS = ((10, 11), (20, 21), (21, 20), (11, 10))  # (up, down): output length = input * up / down


def speed_perturb(x, rng, n):
    """A crop of n samples, resampled from about n * down / up samples of x (band-limited)."""
    import scipy.signal as sps

    up, down = SPEED_RATIOS[int(rng.integers(len(SPEED_RATIOS)))]
    seg = random_crop(x, rng, int(np.ceil(n * down / up)) + 8)
    y = sps.resample_poly(seg.astype(np.float64), up, down)
    return y[:n].astype(np.float32)


# --mobile-codec P: with probability P a training crop, of either class, is cut from its clip's copy
# through a mobile or VoIP codec (MOBILE_CODECS; one codec per clip, drawn once with a fixed generator so
# that every seed trains on the same coded copies, which are cached). The telephone channel follows as
# for any crop. Real callers reach the trunk through these codecs, and they are speech models themselves.
MOBILE_CODEC = 0.0
# --codec-bounds: the drop bound is also held on the validation humans through each codec (see calibrate).
CODEC_BOUNDS = False


def add_coded_copies(clips):
    """Give every training clip a "coded" copy through one codec of MOBILE_CODECS (see MOBILE_CODEC)."""
    train_clips = [c for c in clips if c["split"] == "train"]
    names = list(MOBILE_CODECS)
    pick = np.random.default_rng(5).integers(len(names), size=len(train_clips))
    for k, codec in enumerate(names):
        group = [c for c, i in zip(train_clips, pick) if i == k]
        for c, coded in zip(group, coded_clips(group, codec)):
            c["coded"] = coded["audio"]
    log(f"mobile-codec copies of {len(train_clips)} training clips: " + ", ".join(f"{n} {int((pick == k).sum())}" for k, n in enumerate(names)))


def mix_batch(x, y, rng, alpha):
    """--mixup: each crop mixed with another crop of the batch (a random permutation), waveform and label
    alike, with a weight drawn per crop from Beta(alpha, alpha) (between-class learning, Tokozume et al.
    2018; mixup, Zhang et al. 2018). The labels become soft; binary cross-entropy takes them as they are."""
    lam = torch.tensor(rng.beta(alpha, alpha, len(x)), dtype=x.dtype)
    perm = torch.from_numpy(rng.permutation(len(x)))
    return lam[:, None] * x + (1 - lam[:, None]) * x[perm], lam * y + (1 - lam) * y[perm]


def make_batch(pool, rng, size, domain_ids=None):
    """Balanced classes. Within a class a system is drawn uniformly, or with weight sqrt(clips):
    uniform gives a 5-clip source (libritts) as many draws as 300-clip ones, so the net sees those
    few clips thousands of times; sqrt still lifts small systems without letting them dominate."""
    xs, ys, ds = [], [], []
    for _ in range(size):
        label = int(rng.integers(2))
        systems = pool[label]
        names = list(systems)
        vocoded = [n for n in names if n.startswith("vocoded-")]
        if label == 1 and vocoded and rng.random() < VOCODED_SHARE:
            names = vocoded
        if SYSTEM_WEIGHTING == "sqrt":
            w = np.sqrt([len(systems[n]) for n in names])
            sys_name = names[int(rng.choice(len(names), p=w / w.sum()))]
        else:
            sys_name = names[int(rng.integers(len(names)))]
        clips = systems[sys_name]
        c = clips[int(rng.integers(len(clips)))]
        audio = c["coded"] if MOBILE_CODEC and "coded" in c and rng.random() < MOBILE_CODEC else c["audio"]
        seg = speed_perturb(audio, rng, WIN + 400) if SPEED_PERTURB and rng.random() < SPEED_PERTURB else random_crop(audio, rng, WIN + 400)
        if rng.random() < 0.5:
            seg = rawboost(seg, rng)
        y = telephone_channel(seg, rng)[200 : 200 + WIN]
        # skip near-silent crops: the runtime only scores speech windows
        xs.append(y)
        ys.append(label)
        if domain_ids is not None:
            ds.append(domain_ids[(label, sys_name)])
    x, yt = torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.float32)
    return (x, yt, torch.tensor(ds, dtype=torch.long)) if domain_ids is not None else (x, yt)


def make_pairs(vocoded, rng, n):
    """n (human, copy-synthesis) pairs for --pair-loss: one crop of a vocoded clip and the same samples of
    the human original it was made from, each through the same RawBoost and telephone-channel draws. Only
    the vocoder's traces differ within a pair. Returns 2n crops (n human, then n vocoded) and labels."""
    hs, vs = [], []
    for _ in range(n):
        c = vocoded[int(rng.integers(len(vocoded)))]
        x, y = c["origin"], c["audio"]
        m = min(len(x), len(y))
        if m < WIN + 400:
            x, y = np.tile(x[:m], int(np.ceil((WIN + 400) / m)) + 1), np.tile(y[:m], int(np.ceil((WIN + 400) / m)) + 1)
            m = len(x)
        start = int(rng.integers(0, m - WIN - 400 + 1))
        seed = int(rng.integers(2**62))
        for seg, out in ((x, hs), (y, vs)):
            r = np.random.default_rng(seed)
            crop = seg[start : start + WIN + 400]
            if r.random() < 0.5:
                crop = rawboost(crop, r)
            out.append(telephone_channel(crop, r)[200 : 200 + WIN])
    x = torch.from_numpy(np.stack(hs + vs).astype(np.float32))
    return x, torch.cat([torch.zeros(n), torch.ones(n)])


def pair_pool(clips, pair_from="all"):
    """The copy-synthesis training clips that --pair-loss pairs with their originals: all of them, or with
    pair_from "neural" only the --neural-vocoded ones (systems vocoded-neural-*)."""
    return [c for c in clips if c["split"] == "train" and "origin" in c and (pair_from == "all" or c["system"].startswith("vocoded-neural-"))]


def supcon(features, y, tau=0.1):
    """Supervised contrastive loss (Khosla et al. 2020) on L2-normalised features: each crop's positives
    are the other crops of its class. On paired crops this is Wang & Yamagishi's (ICASSP 2023) contrastive
    feature loss for bona fide and vocoded pairs: what separates a pair is only the vocoder."""
    z = torch.nn.functional.normalize(features, dim=1)
    sim = (z @ z.T) / tau
    eye = torch.eye(len(y), dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (y[:, None] == y[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(logp.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)).mean()


# --pair-loss W: each step also trains on PAIRS (human, copy-synthesis) crop pairs (make_pairs), with
# binary cross-entropy on them and W x the supervised contrastive loss on their pooled features.
PAIRS = 8


def build_pool(clips):
    pool = {0: {}, 1: {}}
    for c in clips:
        pool[c["label"]].setdefault(c["system"], []).append(c)
    return pool


def val_eer(model, val, seed=7):
    """Clip-level EER on the held-out VAL systems, through a fixed random channel (model selection)."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    model.eval()
    with torch.no_grad():
        for c in val:
            w = speech_windows(telephone_channel(c["audio"], rng))
            scores.append(float(model(torch.from_numpy(w)).mean()))
            labels.append(c["label"])
    model.train()
    return eer(np.array(scores), np.array(labels))


# --distill A.onnx,B.onnx,...: ensemble distillation (Hinton et al. 2015). The fifth round's ensembles
# gained 1-2 EER points and 4 ChatTTS points over their members, at a per-window cost that grows with the
# member count. Here the members (trained models, each with the calibration in its JSON) are teachers
# instead: every training crop also gets the members' mean calibrated LLR, softened by a temperature, and
# the net is trained toward (1 - w) x the label + w x sigmoid(mean LLR / T). Binary cross-entropy is linear
# in its target, so this is (1 - w) x BCE(label) + w x BCE(teachers). One net, one net's cost.


def load_teachers(spec):
    """[(run, scale, bias)] for a comma list of ONNX models, each with its JSON beside it (same stem)."""
    teachers = []
    for path in [x for x in spec.split(",") if x]:
        meta_path = os.path.splitext(path)[0] + ".json"
        if not os.path.exists(path) or not os.path.exists(meta_path):
            raise SystemExit(f"--distill: {path} needs the model and its JSON ({meta_path})")
        meta = json.load(open(meta_path))
        if meta.get("windowSamples") != WIN:
            raise SystemExit(f"--distill: {path} takes {meta.get('windowSamples')} samples per window, this run {WIN}")
        run, _ = ort_runner(path)
        teachers.append((run, float(meta["calibration"]["scale"]), float(meta["calibration"]["bias"])))
    return teachers


def distill_targets(teachers, x, y, weight, temp):
    """The soft targets of --distill for a batch x (crops after the channel) with labels y."""
    llr = np.mean([scale * run(x.numpy().astype(np.float32)) + bias for run, scale, bias in teachers], axis=0)
    p = torch.sigmoid(torch.from_numpy(np.asarray(llr, dtype=np.float64)) / temp).to(y.dtype)
    return (1 - weight) * y + weight * p


def train(clips, steps, batch, seed=0, eval_every=500, bands="mel", loss="bce", ema_decay=0.0, phase=False, spec_mask=0.0, sam_rho=0.0, width=16, fine=False, front="spectrogram", domain_adv=0.0, cmn=True, pair_loss=0.0, pair_from="all", mixup=0.0, teachers=None, distill_weight=0.5, distill_temp=2.0, act="relu"):
    """AdamW + one-cycle; every `eval_every` steps the VAL-system EER is measured and the best
    checkpoint is kept (VAL systems are never trained on; TEST systems are never looked at).
    With ema_decay > 0 the evaluated and exported weights are an exponential moving average of the
    trained ones: on unseen systems single checkpoints swing by 10+ EER points from one evaluation
    to the next, and the average is steadier.
    With sam_rho > 0 each step is sharpness-aware (SAM, Foret et al. 2021): the gradient is taken at
    the weights moved by sam_rho along the normalised batch gradient, which seeks flat minima; two
    forward and backward passes per step.
    With domain_adv > 0 the training is domain-adversarial (net.Detector's domain head): the domains are
    the training pool's systems and human sources, each within its class, and the reversal weight rises
    from 0 to domain_adv over the run (Ganin & Lempitsky's schedule, 2 / (1 + exp(-10 p)) - 1)."""
    import copy

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if mixup > 0 and (loss != "bce" or domain_adv > 0 or pair_loss > 0):
        raise SystemExit("--mixup needs --loss bce, no --domain-adv and no --pair-loss")
    if teachers and (loss != "bce" or domain_adv > 0 or pair_loss > 0 or mixup > 0):
        raise SystemExit("--distill needs --loss bce, no --domain-adv, no --pair-loss and no --mixup")
    if teachers:
        log(f"ensemble distillation from {len(teachers)} teachers, weight {distill_weight}, temperature {distill_temp}")
    # --mixup: its own generator, so the batches drawn from `rng` are the recipe's.
    mix_rng = np.random.default_rng([seed, 0x313])
    pool = build_pool([c for c in clips if c["split"] == "train"])
    domain_ids, allowed = None, None
    if domain_adv > 0:
        if front == "raw" or loss != "bce" or sam_rho > 0:
            raise SystemExit("--domain-adv needs the spectrogram front end, --loss bce and no --sam")
        keys = [(label, name) for label in (0, 1) for name in sorted(pool[label])]
        domain_ids = {k: i for i, k in enumerate(keys)}
        allowed = torch.tensor([[k[0] == label for k in keys] for label in (0, 1)])
        log(f"domain-adversarial training over {len(keys)} domains ({len(pool[0])} human, {len(pool[1])} synthetic), weight up to {domain_adv}")
    vocoded = pair_pool(clips, pair_from) if pair_loss > 0 else []
    if pair_loss > 0:
        if front == "raw" or loss != "bce" or sam_rho > 0 or domain_adv > 0:
            raise SystemExit("--pair-loss needs the spectrogram front end, --loss bce, no --sam and no --domain-adv")
        if not vocoded:
            raise SystemExit("--pair-loss needs copy-synthesis clips with their originals (--vocoded > 0; with --pair-from neural, --neural-vocoded > 0)")
        log(f"paired copy-synthesis: {PAIRS} pairs per step from {len(vocoded)} clips ({', '.join(sorted({c['system'] for c in vocoded}))}), contrastive weight {pair_loss}")
    if front == "raw":
        trained = RawDetector(width=width)
    else:
        trained = Detector(width=width, bands=bands, loss=loss, phase=phase, spec_mask=spec_mask, fine=fine, domains=len(domain_ids or {}), cmn=cmn, act=act)
    model = copy.deepcopy(trained) if ema_decay > 0 else trained
    opt = torch.optim.AdamW(trained.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    val = [c for c in clips if c["split"] == "val"]
    trained.train()
    model.train()
    # (average, trained) tensor pairs, taken once: state_dict() returns the live tensors.
    ema_pairs = list(zip(model.state_dict().values(), trained.state_dict().values())) if ema_decay > 0 else []
    t0 = time.time()
    best = (1.0, None, -1)
    for step in range(steps):
        if domain_ids is not None:
            x, y, d = make_batch(pool, rng, batch, domain_ids)
            lam = domain_adv * (2 / (1 + np.exp(-10 * step / max(steps, 1))) - 1)
            loss, bce, dce = trained.domain_loss(x, y, d, allowed, float(lam))
            if step % 50 == 0 or step == steps - 1:
                log(f"  bce {bce.item():.4f} domain ce {dce.item():.4f} (chance {np.log(len(domain_ids) / 2):.2f}) weight {lam:.3f}")
        elif pair_loss > 0:
            x, y = make_batch(pool, rng, batch)
            px, py = make_pairs(vocoded, rng, PAIRS)
            p = trained.pooled(torch.cat([x, px]))
            bce = torch.nn.functional.binary_cross_entropy_with_logits(trained.head(p).squeeze(1), torch.cat([y, py]))
            con = supcon(p[len(x):], py)
            loss = bce + pair_loss * con
            if step % 50 == 0 or step == steps - 1:
                log(f"  bce {bce.item():.4f} pair contrastive {con.item():.4f}")
        else:
            x, y = make_batch(pool, rng, batch)
            if mixup > 0:
                x, y = mix_batch(x, y, mix_rng, mixup)
            if teachers:
                y = distill_targets(teachers, x, y, distill_weight, distill_temp)
            loss = trained.loss(x, y)
        opt.zero_grad()
        loss.backward()
        if sam_rho > 0:
            params = [p for p in trained.parameters() if p.grad is not None]
            with torch.no_grad():
                norm = torch.norm(torch.stack([p.grad.norm() for p in params])) + 1e-12
                moves = [p.grad * (sam_rho / norm) for p in params]
                for p, m in zip(params, moves):
                    p.add_(m)
            opt.zero_grad()
            trained.loss(x, y).backward()
            with torch.no_grad():
                for p, m in zip(params, moves):
                    p.sub_(m)
        opt.step()
        sched.step()
        if ema_pairs:
            with torch.no_grad():
                d = min(ema_decay, (1 + step) / (10 + step))
                for e, t in ema_pairs:
                    if e.dtype.is_floating_point:
                        e.mul_(d).add_(t, alpha=1 - d)
                    else:
                        e.copy_(t)
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
        if val and len({c["label"] for c in val}) == 2 and ((step + 1) % eval_every == 0 or step == steps - 1) and step >= steps // 3:
            e = val_eer(model, val)
            log(f"step {step + 1}: val EER {e:.4f}")
            if e < best[0]:
                best = (e, copy.deepcopy(model.state_dict()), step + 1)
    if best[1] is not None:
        model.load_state_dict(best[1])
        log(f"kept the checkpoint of step {best[2]} (val EER {best[0]:.4f})")
    if getattr(model, "domain_head", None) is not None:
        model.domain_head = None  # training only: not in the exported graph or the parameter count
    model.eval()
    model.selected = dict(step=best[2], valEer=best[0])
    return model


# ---------------------------------------------------------------- scoring

def clip_windows(x):
    if len(x) < WIN:
        x = np.concatenate([x, np.zeros(WIN - len(x), dtype=np.float32)])
    starts = range(0, len(x) - WIN + 1, HOP)
    return np.stack([x[s : s + WIN] for s in starts]).astype(np.float32)


def speech_windows(x):
    w = clip_windows(x)
    rms = np.sqrt(np.mean(w**2, axis=1))
    keep = rms > 10 ** (-45 / 20) * max(1.0, 1.0)
    return w[keep] if keep.any() else w[:1]


def score_clips(run, clips, seed=123, tag=None, channel=None, **chan):
    """Each clip's window logits through a seeded random telephone channel (`chan` fixes one impairment), or
    through `channel(audio, rng)` instead (DIRECT_CODECS). With a `tag` and an open TRACE (evaluate()),
    each clip's stages are recorded for the eval trace."""
    rng = np.random.default_rng(seed)
    out = []
    for c in clips:
        y = channel(c["audio"], rng) if channel else telephone_channel(c["audio"], rng, **chan)
        logits = run(speech_windows(y))
        out.append(logits)
        if tag is not None and TRACE is not None:
            TRACE.append(dict(row=tag, key=c.get("traceKey", ""), label=c["label"], audio=_h(np.asarray(c["audio"], dtype=np.float32)),
                              channel=_h(y), logits=_h(logits), windows=len(logits), meanLogit=f"{float(np.mean(logits)):.6f}"))
    return out


# ---------------------------------------------------------------- evaluation trace (reproducibility)
# evaluate() opens TRACE, and every scoring pass of the report appends one record per clip: hashes of the
# audio as loaded or coded (before the channel), after the seeded telephone channel, and of the window
# logits. Compared between two runs, the first stage whose hashes differ is where the runs part: decoding
# or a codec, the channel's draws or filters, or the network's arithmetic.
TRACE = None
TRACE_PATH = os.path.join(HERE, "eval-trace.csv.gz")
TRACE_FIELDS = ["row", "key", "label", "audio", "channel", "logits", "windows", "meanLogit"]


def _h(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:10]


def trace_keys(clips):
    """A stable name per clip: split, system, source (a generated clip's file relative to the cache, so the
    name does not depend on where the cache lies) and a running count for sources that hold several clips."""
    seen = {}
    for c in clips:
        src = c["source"]
        if os.path.isabs(src):  # generated clips name their file in this machine's cache: keep the part under it
            src = os.path.relpath(src, CACHE) if src.startswith(CACHE + os.sep) else os.path.basename(src)
        k = f"{c['split']}|{c['system']}|{src}"
        seen[k] = seen.get(k, -1) + 1
        c["traceKey"] = f"{k}|{seen[k]}"


def read_trace(path):
    if not os.path.exists(path):
        return None
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def write_trace(rows, path):
    # mtime=0: the same trace gives the same bytes, so a re-run that reproduces shows no git change.
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=TRACE_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with gzip.GzipFile(path, "wb", mtime=0) as gz:  # one write: the compressed bytes depend on how the text is fed
        gz.write(text.getvalue().encode())


def compare_traces(old, new):
    """Per row of the report: how many clips are in both traces, and how many first differ at each stage
    (audio before the channel, after the channel, logits), with the largest change of a clip's mean logit.
    A clip whose audio differs counts there only, and so on down the stages."""
    if old is None:
        return None
    prev = {(r["row"], r["key"]): r for r in old}
    rows = {}
    for r in new:
        o = prev.get((r["row"], r["key"]))
        row = rows.setdefault(r["row"], dict(clips=0, missing=0, audio=0, channel=0, logits=0, maxMeanLogitChange=0.0))
        if o is None:
            row["missing"] += 1
            continue
        row["clips"] += 1
        stage = next((s for s in ("audio", "channel", "logits") if o[s] != r[s]), None)
        if stage:
            row[stage] += 1
        row["maxMeanLogitChange"] = max(row["maxMeanLogitChange"], abs(float(o["meanLogit"]) - float(r["meanLogit"])))
    identical = all(v["missing"] == 0 and v["audio"] + v["channel"] + v["logits"] == 0 for v in rows.values()) and len(new) == len(old)
    # Rows that only one trace holds (e.g. codec draws added to the report): the rest can still match.
    new_rows = sorted(k for k, v in rows.items() if v["clips"] == 0)
    old_rows = sorted({r["row"] for r in old} - set(rows))
    shared = {k: v for k, v in rows.items() if v["clips"] > 0}
    shared_identical = bool(shared) and all(v["missing"] == 0 and v["audio"] + v["channel"] + v["logits"] == 0 for v in shared.values())
    return dict(identical=identical, rows=rows, newRows=new_rows, droppedRows=old_rows, sharedRowsIdentical=shared_identical)


def host_info():
    """What the numbers were computed on: CPU, the instruction sets that numeric kernels dispatch on, and
    the versions of every library and tool on the scoring path."""
    import platform
    import importlib.metadata as md

    cpu, flags = platform.processor(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu in ("", platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = sorted(flags & {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"})
    versions = {}
    for pkg in ("numpy", "scipy", "onnxruntime", "torch", "librosa", "soundfile", "soxr"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    tools = {}
    for tool, arg in (("ffmpeg", "-version"), ("sox", "--version")):
        try:
            tools[tool] = subprocess.run([tool, arg], capture_output=True, text=True, timeout=30).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            tools[tool] = None
    return dict(cpu=cpu, cores=os.cpu_count(), isa=isa, python=platform.python_version(), packages=versions, tools=tools)


def fingerprints(rows):
    """One hash per row of the report and stage, over its clips in order: two runs with equal fingerprints
    scored the same audio through the same channel to the same logits."""
    out = {}
    for r in rows:
        out.setdefault(r["row"], {s: hashlib.sha1() for s in ("audio", "channel", "logits")})
        for s in ("audio", "channel", "logits"):
            out[r["row"]][s].update(r[s].encode())
    return {k: {s: h.hexdigest()[:12] for s, h in v.items()} for k, v in out.items()}


def ort_runner(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(w):
        res = []
        for i in range(0, len(w), 64):
            res.append(sess.run(["logit"], {"audio": w[i : i + 64]})[0])
        return np.concatenate(res)

    return run, sess


def eer(scores, labels):
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def tpr_at(scores, labels, target_fpr):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr[fpr <= target_fpr])) if np.any(fpr <= target_fpr) else 0.0


def sprt(llrs, upper, lower, weight, max_windows):
    cum = 0.0
    for i, l in enumerate(llrs[:max_windows]):
        cum += weight * l
        if cum >= upper:
            return "synthetic", (i * HOP + WIN) / SR * 1000
        if cum <= lower:
            return "human", (i * HOP + WIN) / SR * 1000
    return "unsure", None


# ---------------------------------------------------------------- export

def export(model, path):
    dummy = torch.zeros(2, WIN)
    torch.onnx.export(model, (dummy,), path, input_names=["audio"], output_names=["logit"],
                      dynamic_axes={"audio": {0: "batch"}, "logit": {0: "batch"}}, opset_version=17, dynamo=False)


def parity(model, path, clips):
    run, _ = ort_runner(path)
    w = np.concatenate([clip_windows(c["audio"])[:4] for c in clips[:8]])
    with torch.no_grad():
        ref = model(torch.from_numpy(w)).numpy()
    got = run(w)
    diff = float(np.max(np.abs(ref - got)))
    log(f"parity torch vs onnxruntime: max |diff| = {diff:.2e} over {len(w)} windows")
    if diff > 1e-3:
        raise SystemExit(f"parity check failed: {diff}")
    return diff


# ---------------------------------------------------------------- stages

def calibrate(run, clips):
    """Platt calibration on the held-out VAL split (systems and humans never trained on), then the SPRT
    bounds (choose_decision) on the calibrated val clips. Returns (scale, bias, decision)."""
    from sklearn.linear_model import LogisticRegression

    val = [c for c in clips if c["split"] == "val"]
    val_logits = score_clips(run, val, seed=99)
    X = np.concatenate(val_logits)[:, None]
    Y = np.concatenate([[c["label"]] * len(l) for c, l in zip(val, val_logits)])
    lr = LogisticRegression(class_weight="balanced").fit(X, Y)
    scale, bias = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    log(f"calibration: llr = {scale:.4f} * logit + {bias:.4f}")
    llrs = [scale * l + bias for l in val_logits]
    labels = [c["label"] for c in val]
    populations = [human_population(c) for c in val]
    if CODEC_BOUNDS:
        # --codec-bounds: the validation humans again through each mobile codec, each (codec, population)
        # its own population, so the drop bound holds for mobile callers as well (calibration unchanged).
        humans = [c for c in val if c["label"] == 0]
        for codec in MOBILE_CODECS:
            for c, l in zip(humans, score_clips(run, coded_clips(humans, codec), seed=99)):
                llrs.append(scale * l + bias)
                labels.append(0)
                populations.append(f"{codec}:{human_population(c)}")
    decision = choose_decision(llrs, labels, HOP / WIN, populations=populations)
    if CODEC_BOUNDS:
        decision["codecs"] = list(MOBILE_CODECS)
    decision["byCodec"] = {codec: codec_decision(run, [c for c in val if c["label"] == 0], scale, bias, codec)
                           for codec in GATEWAY_CODECS}
    return scale, bias, decision


# Codecs the gateway decodes besides G.711 (media.fallbackCodecs) and that get bounds of their own in the
# model's JSON (decision.byCodec): the defaults for calls heard in that codec, where the admin has set no
# thresholds (twenty-fourth round).
GATEWAY_CODECS = ["g729"]


def codec_decision(run, val_humans, scale, bias, codec):
    """The bound rule (choose_decision) on the validation humans coded through `codec` (dither draw 0), then
    the G.711 channel (seed 99), under the calibration (scale, bias): the twenty-second round's procedure,
    checked on the gateway's own path in the twenty-third. The SPRT's other settings are the model's."""
    ll = score_clips(run, coded_clips(val_humans, codec), seed=99)
    d = choose_decision([scale * l + bias for l in ll], [0] * len(val_humans), HOP / WIN,
                        populations=[human_population(c) for c in val_humans])
    return dict(dropLlr=d["dropLlr"], warnLlr=d["warnLlr"], humanLlr=d["humanLlr"], humanPopulations=d["humanPopulations"],
                fittedOn=f"{len(val_humans)} validation humans coded through {codec} (dither draw 0), then the G.711 channel (seed 99)")


def human_population(c):
    """The population a validation human clip is counted in for the drop bound: the acted dialogue by
    voice, Tux Paint's descriptions by language (one volunteer each), everything else by source."""
    return c["group"] if c["system"] in ("fillets-dialogues", "tuxpaint-descriptions") else c["system"]


def choose_decision(val_llrs, val_labels, weight, populations=None, min_population=50):
    """Pick SPRT bounds on held-out val systems: the smallest drop bound whose human false-drop rate is
    <= 1%, pooled and in every human population of at least `min_population` clips (so a large, easy
    population cannot spend the budget that a harder one needs), a warn bound at half of it, and a
    symmetric human bound."""
    max_windows = 11  # 6 s of speech
    populations = populations if populations is not None else [None] * len(val_labels)
    sizes = {}
    for p, y in zip(populations, val_labels):
        if y == 0 and p is not None:
            sizes[p] = sizes.get(p, 0) + 1
    big = {p for p, n in sizes.items() if n >= min_population}
    best = None
    for upper in np.arange(1.0, 15.01, 0.25):
        hum = [(sprt(l, upper, -upper, weight, max_windows)[0] == "synthetic", p) for l, y, p in zip(val_llrs, val_labels, populations) if y == 0]
        rates = [np.mean([d for d, _ in hum])] if hum else [0.0]
        rates += [np.mean([d for d, q in hum if q == p]) for p in sorted(big)]
        if max(rates) <= 0.01:
            best = float(upper)
            break
    best = best or 15.0
    return dict(dropLlr=round(best, 2), warnLlr=round(best / 2, 2), humanLlr=round(-best, 2), maxListenMs=6000,
                evidenceWeight=weight, humanPopulations=sorted(big))


# --no-codec-table: leave the mobile-codec table (codec_rows: every codec of EVAL_CODECS, three dither draws
# each) out of the evaluation. It is report-only and takes most of an evaluation's time on 2 cores (about 25
# of 29 minutes, measured in the twenty-sixth round), so experiment rounds that compare recipes on the other rows may skip it; a model that
# ships is evaluated with it.
CODEC_TABLE = True


def evaluate(run, clips, meta):
    global TRACE
    TRACE = []
    trace_keys(clips)
    d = meta["decision"]
    cal = meta["calibration"]
    test = [c for c in clips if c["split"] == "test"]
    labels = np.array([c["label"] for c in test])
    report = {"heldOutTestSystems": sorted({c["system"] for c in test if c["label"] == 1}),
              "heldOutHumanSources": sorted({c["system"] for c in test if c["label"] == 0}),
              "clips": {"human": int((labels == 0).sum()), "synthetic": int((labels == 1).sum())}}

    def clip_scores(logit_lists):
        return np.array([float(np.mean(cal["scale"] * l + cal["bias"])) for l in logit_lists])

    rows = {}
    for name, chan in [("telephone (random G.711 channel)", {}), ("mu-law only", {"law": "mulaw"}), ("A-law only", {"law": "alaw"}),
                       ("3% packet loss", {"loss": 0.03}), ("15 dB noise", {"snr_db": 15.0})]:
        ll = score_clips(run, test, tag=name, **chan)
        s = clip_scores(ll)
        rows[name] = dict(eer=eer(s, labels), auc=auc(s, labels), tprAt1Fpr=tpr_at(s, labels, 0.01), tprAt5Fpr=tpr_at(s, labels, 0.05))
        if name.startswith("telephone"):
            main_ll, main_s = ll, s
    report["robustness"] = rows
    report["main"] = rows["telephone (random G.711 channel)"]
    per_sys = {}
    for c, s in zip(test, main_s):
        per_sys.setdefault(c["system"], []).append(s)
    report["perSystem"] = {k: dict(label="synthetic" if any(c["label"] for c in test if c["system"] == k) else "human", clips=len(v),
                                   flaggedRate=float(np.mean(np.array(v) > 0))) for k, v in sorted(per_sys.items())}
    per_lang = {}
    for lang in sorted({c["language"] for c in test}):
        idx = [i for i, c in enumerate(test) if c["language"] == lang]
        ly = labels[idx]
        per_lang[lang] = dict(clips=len(idx), human=int((ly == 0).sum()), synthetic=int((ly == 1).sum()),
                              eer=eer(main_s[idx], ly) if 0 < ly.sum() < len(ly) else None,
                              humanFlaggedRate=float(np.mean(main_s[idx][ly == 0] > 0)) if (ly == 0).any() else None)
    report["perLanguage"] = per_lang
    # Sequential decision at the recommended bounds.
    maxw = int((d["maxListenMs"] / 1000 * SR - WIN) // HOP + 1)
    dec = [sprt(cal["scale"] * l + cal["bias"], d["dropLlr"], d["humanLlr"], d["evidenceWeight"], maxw) for l in main_ll]
    hum = [v for v, c in zip(dec, test) if c["label"] == 0]
    syn = [v for v, c in zip(dec, test) if c["label"] == 1]
    t_syn = [t for v, t in syn if v == "synthetic"]
    report["sequential"] = dict(
        humanFalseDropRate=float(np.mean([v == "synthetic" for v, _ in hum])),
        humanCorrectRate=float(np.mean([v == "human" for v, _ in hum])),
        syntheticCaughtRate=float(np.mean([v == "synthetic" for v, _ in syn])),
        syntheticUnsureRate=float(np.mean([v == "unsure" for v, _ in syn])),
        medianTimeToSyntheticMs=float(np.median(t_syn)) if t_syn else None,
        p90TimeToSyntheticMs=float(np.percentile(t_syn, 90)) if t_syn else None,
    )
    hs = main_s[labels == 0]

    def held_out_rows(items, subsets, tag):
        """Synthetic clips outside the unseen-system test, one row per system and subset (and "all"),
        each scored against the same test humans."""
        sl = score_clips(run, items, tag=tag)
        ss = clip_scores(sl)
        sdec = [sprt(cal["scale"] * l + cal["bias"], d["dropLlr"], d["humanLlr"], d["evidenceWeight"], maxw)[0] for l in sl]
        rows = {}
        for system in sorted({c["system"] for c in items}):
            for subset in sorted({u for u, c in zip(subsets, items) if c["system"] == system and u is not None}) + ["all"]:
                idx = [i for i, c in enumerate(items) if c["system"] == system and subset in ("all", subsets[i])]
                y = np.r_[np.zeros(len(hs)), np.ones(len(idx))]
                sc = np.r_[hs, ss[idx]]
                rows[f"{system}: {subset}"] = dict(clips=len(idx), groups=len({items[i]["group"] for i in idx}), eer=eer(sc, y), auc=auc(sc, y),
                                                   tprAt1Fpr=tpr_at(sc, y, 0.01), tprAt5Fpr=tpr_at(sc, y, 0.05),
                                                   flaggedRate=float(np.mean(ss[idx] > 0)),
                                                   caughtRate=float(np.mean([sdec[i] == "synthetic" for i in idx])))
        return rows

    # Seen-system protocol: held-out groups of systems trained on in part, against the same test humans.
    seen = [c for c in clips if c["split"] == "seentest"]
    if seen:
        rows = held_out_rows(seen, [SEEN_SUBSETS[c["system"]](c["group"]) for c in seen], "seen systems, held-out groups")
        report["seenSystemsHeldOutGroups"] = dict(systems=sorted({c["system"] for c in seen}),
                                                  trainedOn=bool(set(meta["training"].get("seenSystems", [])) & {c["system"] for c in seen}),
                                                  rows=rows)
    # Related systems (see RELATED_RULES): never trained on, but of a family the model trained on.
    related = [c for c in clips if c["split"] == "relatedtest"]
    if related:
        rows = held_out_rows(related, [None] * len(related), "related systems")
        report["relatedSystems"] = {k: dict(v, reason=RELATED_SYSTEMS[k.split(":")[0]]) for k, v in rows.items()}
    # Shortcut checks: trivial features alone should not separate the classes.
    report["shortcuts"] = shortcut_eers(test, labels)
    # Unseen human speakers in other languages: how often would a real caller be flagged or dropped?
    xtest = [c for c in clips if c["split"] == "xtest"]
    if xtest:
        xl = score_clips(run, xtest, tag="other-language humans")
        xs = clip_scores(xl)
        xdec = [sprt(cal["scale"] * l + cal["bias"], d["dropLlr"], d["humanLlr"], d["evidenceWeight"], maxw)[0] for l in xl]
        rows = {}
        # One row per source, one per voice of the acted dialogue (a single voice can be flagged far more
        # often than its source's average), and all of them.
        voices = sorted({c["group"] for c in xtest if c["system"] == "fillets-dialogues"})
        for name in sorted({c["system"] for c in xtest}) + [f"fillets-dialogues / {g}" for g in voices] + ["all"]:
            idx = [i for i, c in enumerate(xtest) if name in ("all", c["system"], f"{c['system']} / {c['group']}")]
            if len(idx) < 20:
                continue
            rows[name] = dict(clips=len(idx), languages=len({xtest[i]["language"] for i in idx}),
                              flaggedRate=float(np.mean(xs[idx] > 0)), falseDropRate=float(np.mean([xdec[i] == "synthetic" for i in idx])))
        report["heldOutOtherLanguageHumans"] = rows
    if CODEC_TABLE:
        report["mobileCodecs"] = codec_rows(run, cal, d, maxw, test, labels, xtest, main_ll, xl if xtest else [])
    report["uncertainty"] = uncertainty(test, labels, main_s, [v for v, _ in dec], xtest, xdec if xtest else [])
    # Reproducibility: where and with what this was computed, a fingerprint per row and stage, and how the
    # per-clip trace compares with the one committed beside the model (see TRACE).
    rows, TRACE = TRACE, None
    report["reproducibility"] = dict(host=host_info(), fingerprints=fingerprints(rows), traceFile=os.path.basename(TRACE_PATH),
                                     againstCommittedTrace=compare_traces(read_trace(TRACE_PATH), rows))
    report["_trace"] = rows
    return report


binomial_interval = model_card.binomial_interval  # the card renders intervals too; one definition


def clusters(items, idx, key):
    """The indices `idx` grouped by `key` of their item: the units a cluster bootstrap redraws."""
    out = {}
    for i in idx:
        out.setdefault(key(items[i]), []).append(i)
    return list(out.values())


def test_clusters(test, labels):
    """Synthetic clips by TTS system, human clips by speaker group (system and corpus group)."""
    return (clusters(test, np.flatnonzero(labels == 1), lambda c: c["system"]),
            clusters(test, np.flatnonzero(labels == 0), lambda c: (c["system"], c["group"])))


def draw_clusters(cl, rng):
    """One bootstrap draw: as many clusters as there are, with replacement, their indices concatenated."""
    return np.concatenate([cl[j] for j in rng.integers(0, len(cl), len(cl))])


def uncertainty(test, labels, scores, verdicts, xtest=(), xverdicts=(), n_boot=2000, seed=11):
    """95% intervals for the headline numbers, so that a reader can tell a difference from noise.

    A percentile cluster bootstrap: each replicate redraws, with replacement, the unseen TTS systems (all
    clips of a drawn system come along) and the human test speakers (the corpus `group`), and the
    other-language human voices likewise. Clips of one system or one speaker are not independent draws,
    and the question the report answers is how the model does on the next unseen system, so the system
    is the unit. Drop rates also get the exact binomial (Clopper-Pearson) interval that treats clips as
    independent: it is the narrower, optimistic one.
    """
    rng = np.random.default_rng(seed)
    scores, labels = np.asarray(scores), np.asarray(labels)
    dropped = np.array([v == "synthetic" for v in verdicts])
    syn, hum = test_clusters(test, labels)
    xdrop = np.array([v == "synthetic" for v in xverdicts])
    xcl = clusters(list(xtest), range(len(xtest)), lambda c: (c["system"], c["group"])) if len(xtest) else []

    reps = {k: [] for k in ("eer", "auc", "tprAt1Fpr", "humanFalseDropRate", "syntheticCaughtRate", "otherLanguageFalseDropRate")}
    for _ in range(n_boot):
        s_i, h_i = draw_clusters(syn, rng), draw_clusters(hum, rng)
        idx = np.r_[h_i, s_i]
        sc, y = scores[idx], labels[idx]
        reps["eer"].append(eer(sc, y))
        reps["auc"].append(auc(sc, y))
        reps["tprAt1Fpr"].append(tpr_at(sc, y, 0.01))
        reps["humanFalseDropRate"].append(dropped[h_i].mean())
        reps["syntheticCaughtRate"].append(dropped[s_i].mean())
        if xcl:
            reps["otherLanguageFalseDropRate"].append(xdrop[draw_clusters(xcl, rng)].mean())
    point = dict(eer=eer(scores, labels), auc=auc(scores, labels), tprAt1Fpr=tpr_at(scores, labels, 0.01),
                 humanFalseDropRate=float(dropped[labels == 0].mean()), syntheticCaughtRate=float(dropped[labels == 1].mean()),
                 otherLanguageFalseDropRate=float(xdrop.mean()) if xcl else None)
    out = {"method": f"percentile cluster bootstrap, {n_boot} replicates, 95%: synthetic clips drawn by TTS system, humans by speaker group",
           "clusters": dict(syntheticSystems=len(syn), humanGroups=len(hum), otherLanguageGroups=len(xcl)), "metrics": {}}
    for k, v in reps.items():
        if not v:
            continue
        row = dict(value=point[k], bootstrap95=[float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))])
        if k in ("humanFalseDropRate", "syntheticCaughtRate", "otherLanguageFalseDropRate"):
            pool = dropped[labels == (1 if k == "syntheticCaughtRate" else 0)] if k != "otherLanguageFalseDropRate" else xdrop
            row.update(events=int(pool.sum()), clips=len(pool), binomial95=binomial_interval(int(pool.sum()), len(pool)))
        out["metrics"][k] = row
    return out


def coded_clips(clips, codec, draw=0):
    """The clips' audio through a mobile codec (channel.mobile_codec_many, dither draw `draw`), cached under
    CACHE by codec, draw and audio, since a codec run costs more than scoring."""
    import pickle

    spec = MOBILE_CODECS[codec] if codec in MOBILE_CODECS else ["library", codec]
    h = hashlib.sha1(json.dumps([codec, spec, *([f"draw {draw}"] if draw else [])]).encode())
    for c in clips:
        h.update(np.ascontiguousarray(c["audio"], dtype=np.float32).tobytes())
    path = os.path.join(CACHE, f"codec-{codec}-{h.hexdigest()[:12]}.pkl")
    if os.path.exists(path):
        audio = pickle.load(open(path, "rb"))
    else:
        t0 = time.time()
        audio = []
        for i in range(0, len(clips), 100):
            audio += mobile_codec_many([c["audio"] for c in clips[i : i + 100]], codec, draw=draw)
        os.makedirs(CACHE, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        pickle.dump(audio, open(tmp, "wb"))
        os.replace(tmp, path)  # atomic: runs sharing the cache never read a half-written file
        log(f"{codec} (draw {draw}): coded {len(clips)} clips in {time.time() - t0:.0f} s")
    return [dict(c, audio=a) for c, a in zip(clips, audio)]


# The codec table averages CODEC_DRAWS dither draws (channel.codec_commands): going to 16 bits before a codec,
# an inaudible least-significant-bit noise decides part of what a CELP codec's search codes, and a coded
# clip's score moved by up to 2.3 logits between draws (nineteenth round), so one draw is one sample of
# the cell. Draw 0 is the one the report showed before draws were averaged.
CODEC_DRAWS = 3
# Rows of the codec table whose clips take a codec path of their own instead of a codec before the G.711
# channel: g729-direct is how the gateway hears a caller whose offer kept G.729 (media.fallbackCodecs):
# the line's impairments, then G.729 with lost packets concealed by its decoder, and no G.711
# (channel.g729_trunk_channel; twenty-third round). Each entry: (audio, rng, draw) -> the audio heard.
DIRECT_CODECS = {"g729-direct": g729_trunk_channel}
CODEC_METRICS = ("eer", "auc", "tprAt1Fpr", "humanFlaggedRate", "humanFalseDropRate", "syntheticCaughtRate", "otherLanguageFalseDropRate",
                 "humanFalseDropRateAtCodecBound", "syntheticCaughtRateAtCodecBound", "otherLanguageFalseDropRateAtCodecBound")
# The rows whose codec has bounds of its own in the model (decision.byCodec), which the gateway applies to
# such calls: they are also scored at those bounds (the *AtCodecBound metrics).
CODEC_OF_ROW = {"g729": "g729", "g729-direct": "g729"}


def codec_rows(run, cal, d, maxw, test, labels, xtest, plain_ll, plain_xl, draws=None):
    """The caller's speech through a mobile, VoIP or trunk codec (EVAL_CODECS: AMR-NB, GSM-FR, Opus, G.729) before the
    same random telephone channel as the main row. Bounds and calibration are the model's (fitted without
    codecs), as they would be in the field. Each row: the unseen-system test (clip-level EER, AUC, TPR at 1%
    FPR), test humans flagged and dropped, synthetic caught at the drop bound, and the held-out
    other-language humans dropped, pooled and in the worst source or voice with 20 clips or more. A codec
    row is the mean over `draws` (default CODEC_DRAWS) dither draws, with each draw's figures under "draws"
    and the least and greatest under "range"; the worst voice is the one with the highest mean rate over the
    draws. The "none" row reuses the main row's scores (`plain_ll`, `plain_xl`: same clips, same channel
    seed) and has no draws."""
    draws = CODEC_DRAWS if draws is None else draws

    def dropped(logit_lists, bound=None):
        b = bound or d
        return np.array([sprt(cal["scale"] * l + cal["bias"], b["dropLlr"], b["humanLlr"], d["evidenceWeight"], maxw)[0] == "synthetic"
                         for l in logit_lists])

    def one(ll, xl, codec=None):
        s = np.array([float(np.mean(cal["scale"] * l + cal["bias"])) for l in ll])
        dec = dropped(ll)
        row = dict(eer=eer(s, labels), auc=auc(s, labels), tprAt1Fpr=tpr_at(s, labels, 0.01),
                   humanFlaggedRate=float(np.mean(s[labels == 0] > 0)), humanFalseDropRate=float(np.mean(dec[labels == 0])),
                   syntheticCaughtRate=float(np.mean(dec[labels == 1])))
        own = (d.get("byCodec") or {}).get(CODEC_OF_ROW.get(codec))
        if own:
            dec_own = dropped(ll, own)
            row.update(humanFalseDropRateAtCodecBound=float(np.mean(dec_own[labels == 0])),
                       syntheticCaughtRateAtCodecBound=float(np.mean(dec_own[labels == 1])))
        groups = {}
        if xtest:
            xd = dropped(xl)
            for c, v in zip(xtest, xd):
                groups.setdefault(c["system"] if c["system"] != "fillets-dialogues" else f"{c['system']} / {c['group']}", []).append(v)
            row["otherLanguageFalseDropRate"] = float(np.mean(xd))
            if own:
                row["otherLanguageFalseDropRateAtCodecBound"] = float(np.mean(dropped(xl, own)))
        return row, groups

    def worst(groups, n_draws=1):  # sources or voices with 20 clips or more (each clip counted once per draw)
        return max(((k, float(np.mean(v))) for k, v in groups.items() if len(v) >= 20 * n_draws), key=lambda kv: kv[1])

    rows = {}
    row, groups = one(plain_ll, plain_xl)
    if xtest:
        w = worst(groups)
        row["otherLanguageWorst"] = dict(name=w[0], falseDropRate=w[1])
    rows["none"] = row
    for codec in [*EVAL_CODECS, *DIRECT_CODECS]:
        per, pooled = [], {}
        for k in range(draws):
            tag = f"codec {codec}" + (f" draw {k}" if k else "")
            if codec in DIRECT_CODECS:
                path = DIRECT_CODECS[codec]
                heard = lambda x, rng: path(x, rng, k)  # noqa: E731  (k: this draw)
                ll = score_clips(run, test, tag=tag, channel=heard)
                xl = score_clips(run, xtest, tag=f"{tag}, other-language humans", channel=heard) if xtest else []
            else:
                ll = score_clips(run, coded_clips(test, codec, k), tag=tag)
                xl = score_clips(run, coded_clips(xtest, codec, k), tag=f"{tag}, other-language humans") if xtest else []
            r, groups = one(ll, xl, codec)
            per.append(r)
            for g, v in groups.items():
                pooled.setdefault(g, []).extend(v)  # equal clips per draw, so the pooled rate is the mean over draws
        row = {m: float(np.mean([r[m] for r in per])) for m in CODEC_METRICS if m in per[0]}
        row["range"] = {m: [min(r[m] for r in per), max(r[m] for r in per)] for m in CODEC_METRICS if m in per[0]}
        row["draws"] = per
        if xtest:
            w = worst(pooled, draws)
            row["otherLanguageWorst"] = dict(name=w[0], falseDropRate=w[1])
        rows[codec] = row
    return rows


def auc(s, y):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def shortcut_eers(test, labels):
    """EER of trivial features alone, pooled and within each language. Level, roll-off, bandwidth
    and silence are measured on what the model receives (after the telephone channel, which sets a
    random level); duration on the clip as stored. Within-language EERs separate a data confound
    (e.g. Mandarin synthetic vs English human) from a cue inside one language."""
    import librosa

    rng = np.random.default_rng(7)
    feats = {"duration": [], "rms level": [], "silence ratio": [], "spectral roll-off": [], "spectral bandwidth": []}
    for c in test:
        y = telephone_channel(c["audio"], rng)
        feats["duration"].append(len(c["audio"]) / SR)
        feats["rms level"].append(float(np.sqrt(np.mean(y**2))))
        fr = librosa.util.frame(np.pad(y, (0, 160)), frame_length=160, hop_length=160)
        e = np.sqrt(np.mean(fr**2, axis=0))
        feats["silence ratio"].append(float(np.mean(e < 0.1 * np.median(e))))
        feats["spectral roll-off"].append(float(np.mean(librosa.feature.spectral_rolloff(y=y, sr=SR, n_fft=256))))
        feats["spectral bandwidth"].append(float(np.mean(librosa.feature.spectral_bandwidth(y=y, sr=SR, n_fft=256))))
    langs = np.array([c["language"] for c in test])
    out = {}
    for k, v in feats.items():
        v = np.array(v)
        within = {}
        for lang in sorted(set(langs)):
            m = langs == lang
            if 0 < labels[m].sum() < m.sum() and min(labels[m].sum(), (1 - labels[m]).sum()) >= 10:
                within[lang] = min(eer(v[m], labels[m]), eer(-v[m], labels[m]))
        out[k] = dict(pooled=min(eer(v, labels), eer(-v, labels)), withinLanguage=within)
    return out


def timing(sess_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(sess_path, so, providers=["CPUExecutionProvider"])
    res = {}
    for b in (1, 32):
        x = (np.random.default_rng(0).standard_normal((b, WIN)) * 0.1).astype(np.float32)
        for _ in range(5):
            sess.run(["logit"], {"audio": x})
        n = 200 if b == 1 else 20
        t = time.perf_counter()
        for _ in range(n):
            sess.run(["logit"], {"audio": x})
        res[f"msPerWindowBatch{b}"] = (time.perf_counter() - t) / n / b * 1000
    return res


def write_fixtures(clips, run, meta, fx=None):
    """Short redistributable clips for the runtime tests, with onnxruntime reference logits. The README's
    generated part is everything before its first `## ` heading; the sections from there on are written by
    hand (the TLS test certificates') and are kept as they are."""
    from scipy.io import wavfile

    fx = fx or os.path.join(ROOT, "test", "fixtures")
    os.makedirs(fx, exist_ok=True)
    cal = meta["calibration"]
    wanted = [("human", "librispeech", "Apache-2.0"), ("human", "librispeech", "Apache-2.0"), ("human", "fsdd", "CC-BY-SA-4.0"),
              ("synthetic", "tortoise", "Apache-2.0"), ("synthetic", "mandarin-fastspeech2-vocgan", "MIT"),
              ("synthetic", "mimic3", "CC-BY-SA-4.0")]
    refs, readme, used = {}, [], set()
    for label, system, lic in wanted:
        cands = [c for c in clips if c["system"] == system and c["license"] == lic and c["source"] not in used and len(c["audio"]) >= 2 * SR]
        for c in cands:
            x = c["audio"][: 4 * SR]
            x16 = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            xf = x16.astype(np.float32) / 32768
            logits = run(clip_windows(xf))
            mean_llr = float(np.mean(cal["scale"] * logits + cal["bias"]))
            if (mean_llr > 0) == (label == "synthetic"):
                n = sum(1 for k in refs if k.startswith(f"{label}-{system}")) + 1
                name = f"{label}-{system}-{n}.wav"
                wavfile.write(os.path.join(fx, name), SR, x16)
                refs[name] = dict(label=label, windowSamples=WIN, hopSamples=HOP, logits=[float(v) for v in logits], meanLlr=mean_llr)
                readme.append(f"| `{name}` | {label} | {system} | `{c['source']}` | {lic} |")
                used.add(c["source"])
                break
    json.dump(refs, open(os.path.join(fx, "reference-scores.json"), "w"), indent=1)
    manifest = {r["path"]: r for r in csv.DictReader(open(os.path.join(CORPUS, "manifest.csv"), newline=""))}
    lines = ["# Test fixtures", "", "First 4 s of corpus clips (8 kHz mono 16-bit WAV), chosen from sources whose licence allows",
             "redistribution. `reference-scores.json` holds the onnxruntime (Python) logits for each fixture's windows",
             f"({WIN} samples, hop {HOP}, int16/32768 scaling), written by `models/pipeline.py`.", "",
             "| file | label | system | corpus path | licence |", "|---|---|---|---|---|"] + readme + ["", "Upstream sources:", ""]
    for r in readme:
        path = r.split("`")[3]
        m = manifest.get(path)
        if m:
            lines.append(f"- `{path}`: {m['source_repo']} `{m['source_path']}` (speaker {m['speaker'] or 'unknown'}, {m['license']})")
    readme_path = os.path.join(fx, "README.md")
    old = open(readme_path).read() if os.path.exists(readme_path) else ""
    cut = old.find("\n## ")
    kept = old[cut + 1:] if cut >= 0 else ""
    open(readme_path, "w").write("\n".join(lines) + "\n" + ("\n" + kept if kept else ""))
    return sorted(refs)


def prepare(args, rng):
    """Corpus + local TTS + local human + copy-synthesis. The result is cached under
    models/.cache/prepared-*.pkl, keyed by everything that shapes it, so repeated training runs
    (experiments) skip the slow vocoding; delete the file or change a source to rebuild."""
    import pickle

    manifest = os.path.join(CORPUS, "manifest.csv")
    key = hashlib.sha1(json.dumps([hashlib.sha1(open(manifest, "rb").read()).hexdigest(),
                                   args.vocoded, args.extra_human, args.neural_vocoded, args.vocoder_steps, args.vocoder_archs,
                                   *([["vocoder-weights", [hashlib.sha1(open(f, "rb").read()).hexdigest() for f in vocoder_weight_files(args.vocoder_weights)]]]
                                     if args.vocoder_weights and args.neural_vocoded > 0 else []),
                                   *(["gan"] if args.vocoder_gan else []), GCIN_VAL, sorted(VAL_SYSTEMS), sorted(TEST_SYSTEMS), sorted(HUMAN_TEST_GROUPS),
                                   *([["seen", sorted(SEEN_SYSTEMS)]] if SEEN_SYSTEMS else []),
                                   *(["gan-ablation"] if GAN_ABLATION else []),
                                   *([f"local-tts-{LOCAL_TTS}"] if LOCAL_TTS != "basic" else []),
                                   *(["tuxpaint", TUXPAINT_CLIPS, sorted(TUXPAINT_SPLIT.items())] if args.tuxpaint else []),
                                   hashlib.sha1(open(__file__, "rb").read().split(b"# ---------------------------------------------------------------- training")[0]).hexdigest()])
                       .encode()).hexdigest()[:12]
    path = os.path.join(CACHE, f"prepared-{key}.pkl")
    if os.path.exists(path):
        log("prepared data from cache", path)
        return pickle.load(open(path, "rb"))
    log("loading corpus", CORPUS)
    clips = load_corpus()
    clips += ensure_local_tts(wide=LOCAL_TTS != "basic", festival_only=LOCAL_TTS == "festival")
    clips += local_human()
    # The held-out part is always loaded (the evaluation reports on it); the rest only with --extra-human.
    clips += [c for c in extra_human() if args.extra_human or c["split"] == "xtest"]
    if args.tuxpaint:
        clips += tuxpaint_human()
    human_train = [c for c in clips if c["split"] == "train" and c["label"] == 0]
    log("copy-synthesis vocoded spoofs of", min(args.vocoded, len(human_train)), "human clips")
    clips += copy_synthesis(human_train, rng, args.vocoded)
    if args.neural_vocoded > 0:
        clips += neural_copy_synthesis(human_train, rng, args.neural_vocoded, args.vocoder_steps, args.vocoder_archs.split(","),
                                      gan=args.vocoder_gan, weights=args.vocoder_weights)
    os.makedirs(CACHE, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"  # concurrent runs with the same key each write their own
    pickle.dump(clips, open(tmp, "wb"), protocol=4)
    os.replace(tmp, path)
    return clips


def stage_prep(args):
    """Only build (or find) the prepared-data cache, e.g. ahead of several training runs."""
    torch.set_num_threads(args.threads)
    prepare(args, np.random.default_rng(0))


def stage_vocoder_data(args):
    """The human clips for models/gpu_vocoders.py (see write_vocoder_data)."""
    clips = prepare(args, np.random.default_rng(0))
    path = os.path.join(CACHE, "vocoder-data.npz")
    write_vocoder_data(clips, path)
    log("wrote", path)


def stage_all(args):
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clips = prepare(args, rng)
    # Checkpoints are picked on the prepared validation split; the acted dialogue joins afterwards, for
    # calibration, the drop bound and the report.
    if MOBILE_CODEC:
        add_coded_copies(clips)
    model = train(clips, args.steps, args.batch, seed=args.seed, bands=args.bands, loss=args.loss, ema_decay=args.ema, phase=args.phase, spec_mask=args.spec_mask, sam_rho=args.sam, width=args.width, fine=args.fine, front=args.front, domain_adv=args.domain_adv, cmn=not args.no_cmn, pair_loss=args.pair_loss, pair_from=args.pair_from, mixup=args.mixup, act=args.act,
                  teachers=load_teachers(args.distill) if args.distill else None, distill_weight=args.distill_weight, distill_temp=args.distill_temp)
    clips += dialogue_human()
    summary = {}
    for c in clips:
        k = f"{c['split']}/{'synthetic' if c['label'] else 'human'}"
        summary[k] = summary.get(k, 0) + 1
    log("clips per split:", summary)
    onnx_path = os.path.join(HERE, "voiceguard-detector.onnx")
    export(model, onnx_path)
    parity(model, onnx_path, clips)
    run, _ = ort_runner(onnx_path)
    scale, bias, decision = calibrate(run, clips)
    meta = dict(
        name="voiceguard-detector", version=args.version or "1.2.0", createdAt=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sampleRateHz=SR, windowSamples=WIN, hopSamples=HOP,
        input=dict(name="audio", shape=["batch", WIN], dtype="float32"), output=dict(name="logit", shape=["batch"]),
        calibration=dict(method="platt (logistic regression on window logits)", scale=scale, bias=bias,
                         fittedOn="held-out val systems: " + ", ".join(sorted(VAL_SYSTEMS)) + " + held-out human groups"),
        decision=decision,
        training=dict(clips=summary, steps=args.steps, front=("learned sinc filterbank on the raw waveform (RawNet2-style)" if args.front == "raw" else f"{args.bands} filterbank" + (" + phase coherence" if args.phase else "") + (" + fine structure" if args.fine else "") + (", no per-band mean normalisation" if args.no_cmn else "")) + " in the graph", frontKind=args.front, extraHuman=args.extra_human, **({"tuxpaint": TUXPAINT_SPLIT} if args.tuxpaint else {}), loss=args.loss, emaDecay=args.ema, systemWeighting=args.system_weighting, vocodedShare=args.vocoded_share, neuralVocoded=args.neural_vocoded, vocoderSteps=args.vocoder_steps if args.neural_vocoded else 0, vocoderArchs=args.vocoder_archs if args.neural_vocoded else "", vocoderGan=bool(args.vocoder_gan and args.neural_vocoded), **({"vocoderWeights": [os.path.basename(f) for f in vocoder_weight_files(args.vocoder_weights)]} if args.vocoder_weights and args.neural_vocoded else {}), seed=args.seed, specMask=args.spec_mask, samRho=args.sam, width=args.width, fineStructure=args.fine, domainAdversarial=args.domain_adv, bandMeanNormalisation=not args.no_cmn, **({"pairLoss": args.pair_loss, "pairFrom": args.pair_from} if args.pair_loss else {}), **({"mixup": args.mixup} if args.mixup else {}), **({"activation": args.act} if args.act != "relu" else {}), **({"distill": {"teachers": [distill_name(f) for f in args.distill.split(",") if f], "weight": args.distill_weight, "temperature": args.distill_temp}} if args.distill else {}), selectedCheckpoint=getattr(model, "selected", None), batch=args.batch, params=int(sum(p.numel() for p in model.parameters())),
                      valSystems=sorted(VAL_SYSTEMS), testSystems=sorted(TEST_SYSTEMS - SEEN_SYSTEMS - set(RELATED_SYSTEMS)),
                      relatedSystems=dict(sorted(RELATED_SYSTEMS.items())),
                      seenSystems=sorted(SEEN_SYSTEMS), ganAblation=GAN_ABLATION, speedPerturb=SPEED_PERTURB, mobileCodec=MOBILE_CODEC,
                      valSplit=args.val_split,
                      humanHeldOut=human_held_out(),
                      augmentation="RawBoost-style (convolutive, impulsive, non-linear) on half the crops; telephone channel (level, band-limit, noise/hum 10-30 dB, clipping, G.711 mu/A-law, 1-5% loss with concealment), both classes",
                      extraData="espeak-ng en+cmn, flite (held out), Asterisk prompts, gcin Mandarin syllables, copy-synthesis (STFT/mel Griffin-Lim, LPC" + (", neural vocoders (" + args.vocoder_archs + ") trained on the train human clips" if args.neural_vocoded else "") + ")"),
    )
    json.dump(meta, open(os.path.join(HERE, "voiceguard-detector.json"), "w"), indent=2)
    report = evaluate(run, clips, meta)
    report["inference"] = timing(onnx_path)
    report["modelBytes"] = os.path.getsize(onnx_path)
    meta["metrics"] = headline_metrics(report)
    json.dump(meta, open(os.path.join(HERE, "voiceguard-detector.json"), "w"), indent=2)
    write_trace(report.pop("_trace"), TRACE_PATH)
    json.dump(report, open(os.path.join(HERE, "eval.json"), "w"), indent=2)
    fixtures = write_fixtures(clips, run, meta)
    log("fixtures:", fixtures)
    write_eval_md(report, meta)
    model_card.main()
    log("done:", json.dumps(report["main"]), json.dumps(report["sequential"]))


def distill_name(path):
    """A teacher as the student's JSON records it: its version and seed, from the teacher's JSON."""
    meta = json.load(open(os.path.splitext(path)[0] + ".json"))
    return f"{meta.get('version')} seed {meta.get('training', {}).get('seed')}"


def headline_metrics(report):
    """The JSON's `metrics` block: the evaluation's headline numbers."""
    return dict(testEer=report["main"]["eer"], testAuc=report["main"]["auc"], tprAt1Fpr=report["main"]["tprAt1Fpr"],
                sequential=report["sequential"], inference=report["inference"])


def held_out_cells(v):
    """The metric cells of a seen- or related-system row in EVAL.md (see evaluate's held_out_rows)."""
    return f"{v['eer']:.3f} | {v['auc']:.3f} | {v['tprAt1Fpr']:.3f} | {v['tprAt5Fpr']:.3f} | {v['flaggedRate']:.2f} | {v['caughtRate']:.2f}"


def write_eval_md(r, meta):
    L = ["# Detector evaluation", "", f"Model {meta['version']}, created {meta['createdAt']}. Generated by `models/pipeline.py`; numbers are measured, not edited.", "",
         f"Held-out TEST systems (never trained on, not used for calibration): {', '.join(r['heldOutTestSystems'])}.",
         f"Human test sources: {', '.join(r['heldOutHumanSources'])}. Clips: {r['clips']}.", "",
         "## Clip-level (mean window LLR), through a random telephone channel", "", "| condition | EER | ROC AUC | TPR @1% FPR | TPR @5% FPR |", "|---|---|---|---|---|"]
    for k, v in r["robustness"].items():
        L.append(f"| {k} | {v['eer']:.3f} | {v['auc']:.3f} | {v['tprAt1Fpr']:.3f} | {v['tprAt5Fpr']:.3f} |")
    L += ["", "## Sequential decision at the recommended bounds", "", f"Bounds: {json.dumps(meta['decision'])}", ""]
    for k, v in r["sequential"].items():
        L.append(f"- {k}: {v if v is None else round(v, 3)}")
    if r.get("uncertainty"):
        u = r["uncertainty"]
        L += ["", "## Uncertainty (95% intervals)", "", f"Method: {u['method']}. Clusters: {json.dumps(u['clusters'])}.",
              "Binomial: the exact (Clopper-Pearson) interval over clips taken as independent, the narrower one.", "",
              "| metric | value | bootstrap 95% | events / clips | binomial 95% |", "|---|---|---|---|---|"]
        for k, v in u["metrics"].items():
            b = v.get("binomial95")
            L.append(f"| {k} | {v['value']:.3f} | {v['bootstrap95'][0]:.3f}-{v['bootstrap95'][1]:.3f} | "
                     + (f"{v['events']} / {v['clips']} | {b[0]:.4f}-{b[1]:.4f} |" if b else "| |"))
    L += ["", "## Per system (share of clips with mean LLR > 0)", "", "| system | label | clips | flagged |", "|---|---|---|---|"]
    for k, v in r["perSystem"].items():
        L.append(f"| {k} | {v['label']} | {v['clips']} | {v['flaggedRate']:.2f} |")
    L += ["", "## Per language", "", "Human flagged, 95%: the exact binomial interval of the share of that language's human clips flagged.", "",
          "| language | human | synthetic | EER | human flagged | human flagged, 95% |", "|---|---|---|---|---|---|"]
    for k, v in r["perLanguage"].items():
        e = "n/a" if v["eer"] is None else f"{v['eer']:.3f}"
        h = "n/a" if v["humanFlaggedRate"] is None else f"{v['humanFlaggedRate']:.2f}"
        b = "n/a" if v["humanFlaggedRate"] is None else "{:.3f}-{:.3f}".format(*binomial_interval(round(v["humanFlaggedRate"] * v["human"]), v["human"]))
        L.append(f"| {k} | {v['human']} | {v['synthetic']} | {e} | {h} | {b} |")
    if r.get("seenSystemsHeldOutGroups"):
        sg = r["seenSystemsHeldOutGroups"]
        how = ("this model trained on the other groups of these systems" if sg["trainedOn"]
               else "this model never trained on these systems; the rows score the same clips as a seen-system model's report")
        L += ["", f"## Known attack systems, held-out groups ({', '.join(sg['systems'])})", "",
              f"Moved out of the unseen-system test above ({how}). Each row scores the held-out groups against the same",
              "test humans as above. Caught: the sequential decision reaches the drop bound.", "",
              "| system: held-out groups | clips | groups | EER | ROC AUC | TPR @1% FPR | TPR @5% FPR | flagged | caught |", "|---|---|---|---|---|---|---|---|---|"]
        for k, v in sg["rows"].items():
            L.append(f"| {k} | {v['clips']} | {v['groups']} | {held_out_cells(v)} |")
    if r.get("relatedSystems"):
        L += ["", "## Related systems: never trained on, but of a family trained on", "",
              "Moved out of the unseen-system test above, because the training data holds a sibling engine or the same speaker.",
              "Each row scores the system's clips against the same test humans. Caught: the sequential decision reaches the drop bound.", "",
              "| system | clips | EER | ROC AUC | TPR @1% FPR | TPR @5% FPR | flagged | caught | why it is related |", "|---|---|---|---|---|---|---|---|---|"]
        for k, v in r["relatedSystems"].items():
            L.append(f"| {k} | {v['clips']} | {held_out_cells(v)} | {v['reason']} |")
    if r.get("heldOutOtherLanguageHumans"):
        L += ["", "## Held-out human speakers in other languages (Debian recordings, never trained on)", "",
              "One Asterisk speaker (it_IT_m_Carlo), every third KTuberling/KLettres language and Hedgewars voice, and",
              "the Dutch dub of Fish Fillets NG (acted dialogue; rows per voice with 20 clips or more). Rows that",
              "contain \" / \" are parts of the source row above them.",
              "Flagged: mean LLR > 0. Dropped: the sequential decision reaches the drop bound.", "",
              "| source | clips | languages | flagged | dropped |", "|---|---|---|---|---|"]
        for k, v in r["heldOutOtherLanguageHumans"].items():
            L.append(f"| {k} | {v['clips']} | {v['languages']} | {v['flaggedRate']:.2f} | {v['falseDropRate']:.3f} |")
    if r.get("mobileCodecs"):
        L += ["", "## Mobile and VoIP codecs on the caller's side", "",
              "The caller's speech through a codec before the same random G.711 channel: AMR-NB at its highest and lowest",
              "rates (mobile networks), GSM full rate (older networks), Opus at 8 kbit/s (VoIP apps) and G.729 (8 kbit/s,",
              "SIP trunks and enterprise links; bcg729, transcoded to G.711 before voiceguard). g729-direct is the path the",
              "gateway itself hears a caller whose offer kept G.729 on: the same line impairments, then G.729 with lost",
              "packets concealed by its decoder, and no G.711. These codecs are",
              "themselves speech models. Calibration and bounds are the model's, fitted without codecs. Test rows: the",
              "unseen-system test humans and synthetic clips; other-language: the held-out humans above (worst: the source",
              "or voice with 20 clips or more dropped most often). A codec with bounds of its own in the model",
              "(decision.byCodec; the gateway applies them to calls heard in that codec) is also scored at them."]
        n_draws = max((len(v.get("draws", [])) for v in r["mobileCodecs"].values()), default=0)
        if n_draws > 1:
            L += [f"Each codec cell is the mean over {n_draws} draws of the inaudible dither that quantises the speech to 16 bits",
                  "before the codec (a codec's search can flip on one least significant bit), with the lowest and highest draw",
                  "in brackets; the worst voice is the one with the highest mean over the draws. Draw 0 is sox's own repeatable",
                  "dither (Opus: the float input, undithered; G.729: a seeded triangular dither), the others a seeded triangular dither."]
        L += ["", "| codec | EER | ROC AUC | TPR @1% FPR | test humans flagged | test humans dropped | synthetic caught | other-language dropped | "
              "at the codec's own bounds: test humans dropped | synthetic caught | other-language dropped | worst other-language |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]

        def cell(v, m):
            x = v.get(m)
            if x is None:
                return "n/a"
            rg = v.get("range", {}).get(m)
            return f"{x:.3f}" + (f" ({rg[0]:.3f}-{rg[1]:.3f})" if rg else "")

        for k, v in r["mobileCodecs"].items():
            w = v.get("otherLanguageWorst")
            L.append(f"| {k} | " + " | ".join(cell(v, m) for m in CODEC_METRICS) + " | "
                     + (f"{w['name']}: {w['falseDropRate']:.3f}" if w else "n/a") + " |")
    langs = sorted({lang for v in r["shortcuts"].values() for lang in v["withinLanguage"]})
    L += ["", "## Shortcut checks (EER of one trivial feature alone; near 0.5 is good)", "",
          "Measured on the audio the model receives (after the channel; duration as stored). Within-language columns",
          "use only languages with at least 10 clips of each class.", "",
          "| feature | EER pooled | " + " | ".join(f"EER within {lang}" for lang in langs) + " |", "|---|---|" + "---|" * len(langs)]
    for k, v in r["shortcuts"].items():
        L.append(f"| {k} | {v['pooled']:.3f} | " + " | ".join(f"{v['withinLanguage'][lang]:.3f}" if lang in v["withinLanguage"] else "n/a" for lang in langs) + " |")
    L += ["", "## Inference (onnxruntime, Python, 1 thread)", ""]
    for k, v in r["inference"].items():
        L.append(f"- {k}: {v:.3f} ms")
    L.append(f"- model file: {r['modelBytes']} bytes")
    if r.get("reproducibility"):
        rp = r["reproducibility"]
        h = rp["host"]
        L += ["", "## Reproducibility", "",
              f"Computed on: {h['cpu']}, {h['cores']} cores; instruction sets {', '.join(h['isa']) or 'n/a'}; Python {h['python']}; "
              + ", ".join(f"{k} {v}" for k, v in h["packages"].items() if v) + "; " + "; ".join(v for v in h["tools"].values() if v) + ".",
              f"The per-clip trace of every scoring pass is `models/{rp['traceFile']}`: per row and clip, a hash of the audio before",
              "the channel, after it, and of the window logits, and the mean logit. A later run compares its trace with the one",
              "beside the model when it starts (the committed one, after a clean clone) and names, per row, the first stage at which clips differ.", ""]
        cmp = rp.get("againstCommittedTrace")
        if cmp is None:
            L.append("Against the previous trace: there was none beside the model when this run started.")
        elif cmp["identical"]:
            L.append("Against the previous trace (the one beside the model when this run started): every clip identical at every stage.")
        elif cmp.get("sharedRowsIdentical") and not cmp.get("droppedRows"):
            shared = [k for k, v in cmp["rows"].items() if v["clips"] > 0]
            L.append(f"Against the previous trace (the one beside the model when this run started): every clip of the {len(shared)} rows"
                     f" that both traces hold ({sum(cmp['rows'][k]['clips'] for k in shared)} records) identical at every stage. Rows new in"
                     f" this run, which the previous trace did not hold: {', '.join(cmp['newRows'])}.")
        else:
            L += ["Against the previous trace (the one beside the model when this run started; clips that first differ at each stage; largest change of a clip's mean logit):", "",
                  "| row | clips | not in the old trace | audio | channel | logits | largest mean-logit change |", "|---|---|---|---|---|---|---|"]
            for k, v in cmp["rows"].items():
                L.append(f"| {k} | {v['clips']} | {v['missing']} | {v['audio']} | {v['channel']} | {v['logits']} | {v['maxMeanLogitChange']:.2e} |")
            if cmp.get("droppedRows"):
                L.append(f"\nRows of the previous trace that this run did not score: {', '.join(cmp['droppedRows'])}.")
    open(os.path.join(HERE, "EVAL.md"), "w").write("\n".join(L) + "\n")


def committed_model_clips(args, meta, onnx_path):
    """The clips the committed model is evaluated on (its window, and the seen-systems protocol it was
    trained under unless --seen-systems says otherwise), and an onnxruntime runner of it."""
    global WIN, HOP
    WIN, HOP = meta["windowSamples"], meta["hopSamples"]
    trained_on = set(meta["training"].get("seenSystems", []))
    if args.seen_systems is None:  # by default, the protocol the committed model was trained under
        set_seen(sorted(trained_on))
    elif trained_on - SEEN_SYSTEMS:
        raise SystemExit(f"the model trained on part of {', '.join(sorted(trained_on - SEEN_SYSTEMS))}: scoring it as an unseen "
                         f"test system would count its training clips; keep it in --seen-systems")
    RELATED_SYSTEMS.clear()
    RELATED_SYSTEMS.update(meta["training"].get("relatedSystems", {}))
    clips = load_corpus() + ensure_local_tts() + local_human() + [c for c in extra_human() if c["split"] == "xtest"] + dialogue_human()
    run, _ = ort_runner(onnx_path)
    return clips, run


def stage_codec_bound(args):
    """The twenty-second round (EXPERIMENTS.md): the pipeline's bound rule (choose_decision) applied to the
    validation humans coded through one codec (`--codec`, dither draw 0, channel seed 99), with the committed
    calibration; then, at that bound, at the G.729 rule's 5.25, at the all-codec 7.0 and at the model's own,
    the coded test clips over the codec table's dither draws (channel seed 123) and the coded other-language
    humans. The codec comes before the G.711 telephone channel (a caller transcoded to G.711 on the way);
    with `--direct` (twenty-third round, G.729 only), the clips take the gateway's own G.729 path instead
    (channel.g729_trunk_channel: line impairments, G.729 with lost packets concealed, no G.711). Prints the
    figures as JSON."""
    if args.direct and args.codec != "g729":
        raise SystemExit("codec-bound --direct: only g729 has a direct path (the gateway's fallback codec)")
    if args.write and (args.direct or args.codec not in GATEWAY_CODECS):
        raise SystemExit(f"codec-bound --write: the bounds of one of {GATEWAY_CODECS}, fitted as `all` fits them (without --direct)")
    if args.write and (not args.version or args.version == json.load(open(os.path.join(HERE, "voiceguard-detector.json")))["version"]):
        raise SystemExit("codec-bound --write changes the model's decision: give it a new --version")
    meta = json.load(open(os.path.join(HERE, "voiceguard-detector.json")))
    clips, run = committed_model_clips(args, meta, os.path.join(HERE, "voiceguard-detector.onnx"))
    cal, d = meta["calibration"], meta["decision"]
    maxw = int((d["maxListenMs"] / 1000 * SR - WIN) // HOP + 1)
    llr = lambda ll: [cal["scale"] * l + cal["bias"] for l in ll]  # noqa: E731

    def scored(cs, seed, draw=0):
        if not cs:
            return []
        if args.direct:
            return llr(score_clips(run, cs, seed=seed, channel=lambda x, rng: g729_trunk_channel(x, rng, draw)))
        return llr(score_clips(run, coded_clips(cs, args.codec, draw), seed=seed))

    val_h = [c for c in clips if c["split"] == "val" and c["label"] == 0]
    if args.direct:
        fitted = choose_decision(scored(val_h, 99), [0] * len(val_h), HOP / WIN, populations=[human_population(c) for c in val_h])
    else:
        fitted = codec_decision(run, val_h, cal["scale"], cal["bias"], args.codec)
    test = [c for c in clips if c["split"] == "test"]
    xtest = [c for c in clips if c["split"] == "xtest"]
    labels = np.array([c["label"] for c in test])
    draws = {}
    for k in range(CODEC_DRAWS):
        t0 = time.time()
        draws[k] = (scored(test, 123, k), scored(xtest, 123, k))
        log(f"codec-bound {args.codec}{' direct' if args.direct else ''}: draw {k} scored in {time.time() - t0:.0f} s")

    def at(bound):
        per = []
        for k, (tl, xl) in draws.items():
            dec = np.array([sprt(l, bound, -bound, d["evidenceWeight"], maxw)[0] == "synthetic" for l in tl])
            xd = [sprt(l, bound, -bound, d["evidenceWeight"], maxw)[0] == "synthetic" for l in xl]
            per.append(dict(testHumansDropped=float(np.mean(dec[labels == 0])), syntheticCaught=float(np.mean(dec[labels == 1])),
                            otherLanguageDropped=float(np.mean(xd)) if xd else None))
        mean = {m: float(np.mean([r[m] for r in per])) for m in per[0] if per[0][m] is not None}
        return dict(dropLlr=bound, mean=mean, draws=per)

    def clip_level(tl):
        s = np.array([float(np.mean(l)) for l in tl])
        return dict(eer=eer(s, labels), auc=auc(s, labels), tprAt1Fpr=tpr_at(s, labels, 0.01))

    out = dict(codec=args.codec, path="direct (no G.711)" if args.direct else "codec, then the G.711 channel", model=meta["version"],
               valHumans=len(val_h), testClips=len(test), otherLanguageHumans=len(xtest), fitted=fitted,
               clipLevel=[clip_level(tl) for tl, _ in draws.values()],
               atFitted=at(fitted["dropLlr"]), atG729RuleBound=at(5.25), atAllCodecBound=at(7.0), atModelBound=at(d["dropLlr"]))
    print(json.dumps(out, indent=2))
    if args.write:
        # The fitted bounds become the model's own for this codec (decision.byCodec), as `all` and `recal`
        # fit them; a new version, since the gateway's defaults for such calls change.
        meta["decision"].setdefault("byCodec", {})[args.codec] = fitted
        # Weights and calibration stay: reports keyed by a version (baseline.json) still hold for it.
        meta.setdefault("scoresOf", meta["version"])
        meta["version"] = args.version
        json.dump(meta, open(os.path.join(HERE, "voiceguard-detector.json"), "w"), indent=2)
        log(f"decision.byCodec.{args.codec} written into voiceguard-detector.json (version {args.version}); run `npm run model:eval` next")


def stage_eval(args):
    """Re-evaluate the committed model on the held-out test split (npm run model:eval). The `recal` stage
    first re-fits calibration and the SPRT bounds on today's validation split (same weights; e.g. after the
    held-out human sets grew), then writes the JSON and the fixtures' reference scores as `all` would."""
    onnx_path = os.path.join(HERE, "voiceguard-detector.onnx")
    meta = json.load(open(os.path.join(HERE, "voiceguard-detector.json")))
    if args.stage == "recal" and (not args.version or args.version == meta["version"]):
        raise SystemExit(f"recal changes the model's calibration and bounds: give it a new --version (now {meta['version']})")
    clips, run = committed_model_clips(args, meta, onnx_path)
    if args.stage == "recal":
        # Same weights, calibration and bounds re-fitted on today's validation split (e.g. after it grew).
        scale, bias, decision = calibrate(run, clips)
        meta["calibration"].update(scale=scale, bias=bias,
                                   fittedOn="held-out val systems: " + ", ".join(sorted(VAL_SYSTEMS)) + " + held-out human groups")
        meta["decision"] = decision
        meta.pop("scoresOf", None)  # the calibration is new: the scores are this version's own
        meta["training"]["humanHeldOut"] = human_held_out()
        meta["version"] = args.version
        meta["recalibratedAt"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for k in [k for k in meta["training"]["clips"] if not k.startswith("train/")]:
            del meta["training"]["clips"][k]
        for c in clips:  # the held-out counts as re-fitted and evaluated; training counts as trained
            if c["split"] != "train":
                k = f"{c['split']}/{'synthetic' if c['label'] else 'human'}"
                meta["training"]["clips"][k] = meta["training"]["clips"].get(k, 0) + 1
    report = evaluate(run, clips, meta)
    report["inference"] = timing(onnx_path)
    report["modelBytes"] = os.path.getsize(onnx_path)
    write_trace(report.pop("_trace"), TRACE_PATH)
    json.dump(report, open(os.path.join(HERE, "eval.json"), "w"), indent=2)
    if args.stage == "recal":
        meta["metrics"] = headline_metrics(report)
        json.dump(meta, open(os.path.join(HERE, "voiceguard-detector.json"), "w"), indent=2)
        # The runtime test checks that each fixture's mean LLR lands on its side of 0 under the JSON's
        # calibration, so the fixtures are chosen again (as `all` does) with the new one.
        log("fixtures:", write_fixtures(clips, run, meta))
    write_eval_md(report, meta)
    model_card.main()
    log("done:", json.dumps(report["main"]), json.dumps(report["sequential"]))


def paired_eer_difference(test, labels, base, other, n_boot=2000, seed=11):
    """EER(other) - EER(base) on the same clips, with a 95% percentile cluster bootstrap that redraws the
    synthetic systems and the human speaker groups as uncertainty() does; both scores ride on each draw."""
    rng = np.random.default_rng(seed)
    syn, hum = test_clusters(test, np.asarray(labels))
    reps = []
    for _ in range(n_boot):
        idx = np.r_[draw_clusters(hum, rng), draw_clusters(syn, rng)]
        reps.append(eer(other[idx], labels[idx]) - eer(base[idx], labels[idx]))
    return dict(value=eer(other, labels) - eer(base, labels), bootstrap95=[float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))])


def stage_baseline(args):
    """Twenty-first round: the LFCC-GMM baseline (baseline.py) trained on this recipe's training clips and scored
    beside the committed model on the same validation and test clips, through the same channel draws as
    calibrate() (seed 99) and evaluate() (seed 123); writes models/baseline.json."""
    from sklearn.linear_model import LogisticRegression
    import baseline

    torch.set_num_threads(args.threads)
    meta = json.load(open(os.path.join(HERE, "voiceguard-detector.json")))
    if set(meta["training"].get("seenSystems", [])) != SEEN_SYSTEMS:
        raise SystemExit(f"give the committed model's --seen-systems ({','.join(meta['training'].get('seenSystems', []))}) "
                         "so that both models see the same training and test clips")
    global WIN, HOP
    WIN, HOP = meta["windowSamples"], meta["hopSamples"]
    RELATED_SYSTEMS.clear()
    RELATED_SYSTEMS.update(meta["training"].get("relatedSystems", {}))
    train_clips = [c for c in prepare(args, np.random.default_rng(0)) if c["split"] == "train"]
    rng = np.random.default_rng(5)
    audio = [telephone_channel(c["audio"], rng) for c in train_clips]
    gmm = baseline.LfccGmm(components=args.gmm_components, seed=args.seed).fit(audio, [c["label"] for c in train_clips], log=log)
    del audio
    clips = load_corpus() + ensure_local_tts() + local_human() + dialogue_human()
    run, _ = ort_runner(os.path.join(HERE, "voiceguard-detector.onnx"))
    cal = meta["calibration"]

    def both(split, seed):
        chan = np.random.default_rng(seed)  # consumed exactly as score_clips() does, so the channel copies are the net's
        part = [c for c in clips if c["split"] == split]
        net, base = [], []
        for c in part:
            y = telephone_channel(c["audio"], chan)
            net.append(float(np.mean(cal["scale"] * run(speech_windows(y)) + cal["bias"])))
            base.append(gmm.score(y))
        return part, np.array([c["label"] for c in part]), np.array(net), np.array(base)

    val, val_y, val_net, val_gmm = both("val", 99)
    test, y, net, raw = both("test", 123)
    platt = LogisticRegression(class_weight="balanced").fit(val_gmm[:, None], val_y)
    fusion = LogisticRegression(class_weight="balanced").fit(np.c_[val_net, val_gmm], val_y)
    scores = {"model " + meta["version"]: net, "LFCC-GMM": platt.decision_function(raw[:, None]),
              "fusion": fusion.decision_function(np.c_[net, raw])}
    report = dict(
        baseline=dict(features="LFCC: 20 ms frames, 10 ms hop, 256-point FFT, 20 linear filters 0-4 kHz, 20 cepstra + deltas + double deltas; "
                               f"frames under {baseline.FLOOR_DBFS:.0f} dBFS left out",
                      gmm=f"two diagonal GMMs of {gmm.components} components (human, synthetic), at most {gmm.frames_per_class} frames a class from one "
                          "seeded telephone-channel copy of each training clip (no RawBoost)",
                      trainingClips={"human": sum(1 for c in train_clips if c["label"] == 0), "synthetic": sum(1 for c in train_clips if c["label"] == 1)},
                      plattOnVal=dict(scale=float(platt.coef_[0, 0]), bias=float(platt.intercept_[0])),
                      fusionOnVal=dict(netWeight=float(fusion.coef_[0, 0]), gmmWeight=float(fusion.coef_[0, 1]), bias=float(fusion.intercept_[0]))),
        clips=dict(val=len(val), test=dict(human=int((y == 0).sum()), synthetic=int((y == 1).sum()))),
        committedMainEer=json.load(open(os.path.join(HERE, "eval.json")))["main"]["eer"] if os.path.exists(os.path.join(HERE, "eval.json")) else None,
        rows={k: dict(eer=eer(s, y), auc=auc(s, y), tprAt1Fpr=tpr_at(s, y, 0.01), tprAt5Fpr=tpr_at(s, y, 0.05)) for k, s in scores.items()},
        perSystem={sysname: {k: float(np.mean(s[[i for i, c in enumerate(test) if c["system"] == sysname]] > 0)) for k, s in scores.items()}
                   for sysname in sorted({c["system"] for c in test})},
        eerDifferenceFromModel={k: paired_eer_difference(test, y, net, s) for k, s in scores.items() if k != "model " + meta["version"]},
    )
    json.dump(report, open(os.path.join(HERE, "baseline.json"), "w"), indent=2)
    log("baseline:", json.dumps(report["rows"]), json.dumps(report["eerDifferenceFromModel"]))
    return report


def stage_smoke(args):
    """The recipe end to end on ~20 clips: load -> 1 training step -> export -> parity."""
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    clips = load_corpus(limit=20)
    for c in clips:
        c["split"] = "train"
    if len({c["label"] for c in clips}) < 2:
        raise SystemExit("smoke sample lacks a class")
    model = train(clips, 1, 4)
    path = os.path.join(args.out, "smoke.onnx")
    export(model, path)
    d = parity(model, path, clips)
    # The experiment options must not rot either: linear bands + phase coherence + fine structure + OC-softmax + EMA +
    # spectrogram masking + SAM + MFM activations + a narrower net (--width 8), exported and checked, and both copy-synthesis vocoders for 2 steps on the sample's human clips.
    global SPEED_PERTURB
    SPEED_PERTURB = 1.0  # every crop of the variant run is speed-perturbed
    variant = train(clips, 2, 4, bands="linear", loss="oc", ema_decay=0.998, phase=True, spec_mask=1.0, sam_rho=0.05, width=8, fine=True, cmn=False, act="mfm")
    SPEED_PERTURB = 0.0
    vpath = os.path.join(args.out, "smoke-linear-oc.onnx")
    export(variant, vpath)
    dv = parity(variant, vpath, clips)
    # --window-s 2: a 2 s window (16000 samples, hop 8000) trains, exports and matches onnxruntime.
    global WIN, HOP
    WIN, HOP = 2 * SR, SR
    long_window = train(clips, 1, 4)
    wpath = os.path.join(args.out, "smoke-2s.onnx")
    export(long_window, wpath)
    dw = parity(long_window, wpath, clips)
    WIN, HOP = SR, SR // 2
    # --front raw: the learned sinc filters' graph (filters computed from their cut-offs) exports and matches.
    raw = train(clips, 2, 4, front="raw", width=8)
    rpath = os.path.join(args.out, "smoke-raw.onnx")
    export(raw, rpath)
    dr = parity(raw, rpath, clips)
    # --domain-adv: the adversarial head trains, and is left out of the exported graph.
    adv = train(clips, 2, 4, width=8, domain_adv=0.1)
    if any(k.startswith("domain_head") for k in adv.state_dict()):
        raise SystemExit("--domain-adv: the domain head is still in the model")
    apath = os.path.join(args.out, "smoke-adv.onnx")
    export(adv, apath)
    da = parity(adv, apath, clips)
    # --pair-loss: copy-synthesis clips keep their originals; pairs are sample-aligned and share the channel draws.
    paired = pair_loss_check(clips, args.out)
    from vocoder import resynthesise, train_vocoder

    human = [c for c in clips if c["label"] == 0]
    vocoded = {}
    for arch in ("istft", "upsample"):
        y = resynthesise(train_vocoder(human, 2, arch=arch, log=log, gan=arch == "istft"), human[0]["audio"])
        if len(y) != len(human[0]["audio"]) or not np.all(np.isfinite(y)):
            raise SystemExit(f"{arch} vocoder output is broken")
        vocoded[arch] = len(y)
    print(json.dumps({"ok": True, "onnx": path, "parityMaxAbsDiff": d, "variantParityMaxAbsDiff": dv, "window2sParityMaxAbsDiff": dw, "rawParityMaxAbsDiff": dr, "domainAdvParityMaxAbsDiff": da, "vocodedSamples": vocoded,
                      "seenSplits": seen_split_check(), "ganAblationSplit": gan_ablation_check(), "wideLocalTts": wide_local_tts_check(args.out),
                      "relatedSplit": related_split_check(), "dialogue": dialogue_check(), "tuxpaint": tuxpaint_check(), "decision": decision_check(),
                      "mobileCodecs": mobile_codec_check(clips), "codecTable": codec_table_check(), "mixup": mixup_check(clips, args.out), "distill": distill_check(clips, path), "baseline": baseline_check(clips), "uncertainty": uncertainty_check(), "pairLoss": paired, "trace": trace_check(args.out),
                      "fixtureReadme": fixture_readme_check(clips, path, args.out), "gpuVocoders": gpu_vocoder_check(clips, args.out)}))


def fixture_readme_check(clips, onnx_path, out):
    """write_fixtures() rewrites the README's generated part and keeps the hand-written sections after it
    (test/fixtures/README.md's TLS certificates), the same after a second run."""
    fx = os.path.join(out, "fixtures")
    os.makedirs(fx, exist_ok=True)
    hand = "## `tls/`: written by hand\n\nKept as it is.\n"
    open(os.path.join(fx, "README.md"), "w").write("# Test fixtures\n\nan old generated part\n\n" + hand)
    run = ort_runner(onnx_path)[0]
    for _ in range(2):
        written = write_fixtures(clips, run, dict(calibration=dict(scale=1.0, bias=0.0)), fx=fx)
        text = open(os.path.join(fx, "README.md")).read()
        if not text.startswith("# Test fixtures\n") or "an old generated part" in text or not text.endswith("\n\n" + hand) or text.count("\n## ") != 1:
            raise SystemExit(f"write_fixtures: the README's hand-written section was not kept:\n{text}")
    return dict(handWrittenKept=True, fixtures=len(written))


def gpu_vocoder_check(clips, out):
    """The twenty-fifth round's path on the smoke sample, on CPU: vocoder-data's file, models/gpu_vocoders.py
    (two of its vocoders, 3 s each, with the held-out mel distance), and --vocoder-weights loading them
    for copy-synthesis."""
    human = [dict(c, split="train") for c in clips if c["label"] == 0]
    val = [dict(c, split="val") for c in human[:2]]
    data = os.path.join(out, "vocoder-data.npz")
    write_vocoder_data(human + val, data)
    weights = os.path.join(out, "gpu-vocoders")
    subprocess.run([sys.executable, os.path.join(HERE, "gpu_vocoders.py"), data, weights, "--seconds", "3", "--batch", "2",
                    "--only", "hifigan-m,vocos-l"], check=True)
    info = {f: json.load(open(os.path.join(weights, f))) for f in sorted(os.listdir(weights)) if f.endswith(".json")}
    if sorted(info) != ["hifigan-m.json", "vocos-l.json"] or not all(i["steps"] >= 1 and i["valMelDistance"] > 0 for i in info.values()):
        raise SystemExit(f"gpu_vocoders.py wrote {info}")
    made = neural_copy_synthesis(human, np.random.default_rng(0), 4, 0, [], weights=weights)
    systems = sorted({c["system"] for c in made})
    if systems != ["vocoded-neural-hifigan-m", "vocoded-neural-vocos-l"]:
        raise SystemExit(f"--vocoder-weights made {systems}")
    for c in made:
        if len(c["audio"]) != len(c["origin"]) or not np.all(np.isfinite(c["audio"])):
            raise SystemExit(f"{c['system']} output is broken")
    return dict(vocoders=systems, steps={k: v["steps"] for k, v in info.items()}, clips=len(made))


def pair_loss_check(clips, out):
    """--pair-loss on the smoke sample: copy-synthesis of its human clips, a look at one LPC pair (the two
    crops are the same samples, so their 20 ms energy envelopes follow each other, and no longer do when
    one is shifted by 200 ms), and 2 training steps exported and checked for parity."""

    def envelope(a):  # 20 ms frame RMS
        return np.sqrt(np.mean(a[: len(a) // 160 * 160].reshape(-1, 160) ** 2, axis=1))

    human = [c for c in clips if c["label"] == 0]
    vocoded = copy_synthesis(human, np.random.default_rng(0), 3)
    # The same pick and generator seed make the same audio (Griffin-Lim's random phases are seeded).
    again = copy_synthesis(human, np.random.default_rng(0), 3)
    repeatable = {c["system"]: bool(np.array_equal(c["audio"], d["audio"])) for c, d in zip(vocoded, again)}
    lpc = next(c for c in vocoded if c["system"] == "vocoded-lpc")
    px, py = make_pairs([lpc], np.random.default_rng(1), 2)
    h, v = px[0].numpy(), px[2].numpy()  # pair 0: its human crop and its vocoded crop
    corr = float(np.corrcoef(envelope(h), envelope(v))[0, 1])
    shifted = float(np.corrcoef(envelope(h), envelope(np.roll(v, 1600)))[0, 1])  # the same crop 200 ms out of step
    model = train(clips + vocoded, 2, 4, width=8, pair_loss=0.5)
    path = os.path.join(out, "smoke-pair.onnx")
    export(model, path)
    # --pair-from neural: the neural vocoders' clips keep their originals too (same length: the vocoder is frame-synchronous),
    # and only they are paired (1 training step with the Griffin-Lim/LPC clips also present).
    neural = neural_copy_synthesis(human, np.random.default_rng(2), 2, 2, ["upsample"])
    if not all("origin" in c and len(c["origin"]) == len(c["audio"]) for c in neural):
        raise SystemExit("neural copy-synthesis clips lost their originals")
    train(clips + vocoded + neural, 1, 4, width=8, pair_loss=0.5, pair_from="neural")
    return dict(vocodedWithOrigin=sum("origin" in c and len(c["origin"]) >= len(c["audio"]) - 256 for c in vocoded), pairs=int(len(py)),
                neuralWithOrigin=len(neural), neuralPairSystems=sorted({c["system"] for c in pair_pool(clips + vocoded + neural, "neural")}),
                allPairSystems=sorted({c["system"] for c in pair_pool(clips + vocoded + neural)}),
                pairLabels=[int(v) for v in py], copySynthesisRepeatable=repeatable, envelopeCorrelation=corr, envelopeCorrelationShifted=shifted,
                parityMaxAbsDiff=parity(model, path, clips))


def trace_check(out):
    """The eval trace: two scoring passes of the same clips give identical traces; one clip through another
    channel seed differs from its first pass at the channel stage, and a changed network at the logits stage;
    a trace survives the gzip round trip byte for byte; the host record names the CPU."""
    global TRACE
    clips = [dict(audio=(np.random.default_rng(i).standard_normal(SR * 2) * 0.1).astype(np.float32), label=i % 2, split="test",
                  system="s", source="same-file") for i in range(3)]
    trace_keys(clips)
    runs = {}
    for name, run, seed in (("first", lambda w: w[:, :8].sum(axis=1), 123), ("again", lambda w: w[:, :8].sum(axis=1), 123),
                            ("seed", lambda w: w[:, :8].sum(axis=1), 124), ("net", lambda w: w[:, :9].sum(axis=1), 123)):
        TRACE = []
        score_clips(run, clips, seed=seed, tag="row")
        runs[name], TRACE = TRACE, None
    path = os.path.join(out, "trace.csv.gz")
    write_trace(runs["first"], path)
    first_bytes = open(path, "rb").read()
    write_trace(runs["first"], path)
    back = read_trace(path)
    # A run that adds a row (the codec draws did) still matches in the rows both traces hold.
    added = runs["again"] + [dict(r, row="added") for r in runs["again"]]
    grown = compare_traces(runs["first"], added)
    return dict(keys=[c["traceKey"] for c in clips], sameBytes=first_bytes == open(path, "rb").read(),
                grown=dict(identical=grown["identical"], sharedRowsIdentical=grown["sharedRowsIdentical"], newRows=grown["newRows"],
                           droppedRows=grown["droppedRows"]),
                shrunk=compare_traces(added, runs["again"])["droppedRows"],
                roundTrip=compare_traces(back, runs["first"])["identical"], again=compare_traces(runs["first"], runs["again"]),
                seed=compare_traces(runs["first"], runs["seed"])["rows"]["row"], net=compare_traces(runs["first"], runs["net"])["rows"]["row"],
                host=host_info())


def distill_check(clips, teacher):
    """--distill on the smoke sample, with the smoke model as its one teacher (a JSON beside it with an
    identity calibration): weight 0 gives the labels back, weight 1 sigmoid(teacher LLR / T); the targets
    lie in [0, 1]; 2 training steps with the option export and match onnxruntime."""
    json.dump(dict(windowSamples=WIN, version="smoke", training=dict(seed=0), calibration=dict(scale=1.0, bias=0.0)),
              open(os.path.splitext(teacher)[0] + ".json", "w"))
    teachers = load_teachers(teacher)
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((4, WIN)).astype(np.float32) * 0.1)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    llr = torch.from_numpy(teachers[0][0](x.numpy()).astype(np.float64))
    hard = distill_targets(teachers, x, y, 0.0, 2.0)
    soft = distill_targets(teachers, x, y, 1.0, 2.0)
    half = distill_targets(teachers, x, y, 0.5, 2.0)
    ok = (torch.equal(hard, y) and torch.allclose(soft.double(), torch.sigmoid(llr / 2.0), atol=1e-6)
          and torch.allclose(half, 0.5 * y + 0.5 * soft, atol=1e-6) and bool(((half >= 0) & (half <= 1)).all()))
    if not ok:
        raise SystemExit(f"--distill targets are wrong: {hard} {soft} {half} (teacher LLR {llr})")
    out = os.path.join(os.path.dirname(teacher), "smoke-distill.onnx")
    student = train(clips, 2, 4, width=8, teachers=teachers)
    export(student, out)
    return dict(targets=[round(float(v), 4) for v in half], parityMaxAbsDiff=parity(student, out, clips))


def mixup_check(clips, out):
    """--mixup: in a batch of two human and two synthetic crops mixed by mix_batch, each crop is a convex
    combination of itself and one crop of the batch, its label the same combination of the two labels; at
    least one crop mixes across the classes (soft label); 2 training steps with the option export and match
    onnxruntime."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((4, WIN)).astype(np.float32)).double()
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    mx, my = mix_batch(x, y, np.random.default_rng(1), 0.4)
    convex = True
    for i in range(4):
        found = False
        for j in range(4):
            d = x[i] - x[j]
            if j == i:
                found |= bool(torch.allclose(mx[i], x[i])) and float(my[i]) == float(y[i])
                continue
            lam = float(torch.dot(mx[i] - x[j], d) / torch.dot(d, d))  # least squares: mx[i] = lam x[i] + (1 - lam) x[j]
            fit = torch.allclose(mx[i], lam * x[i] + (1 - lam) * x[j], atol=1e-9)
            found |= fit and -1e-9 <= lam <= 1 + 1e-9 and abs(float(my[i]) - (lam * float(y[i]) + (1 - lam) * float(y[j]))) < 1e-9
        convex &= found
    model = train(clips, 2, 4, width=8, mixup=0.4)
    path = os.path.join(out, "smoke-mixup.onnx")
    export(model, path)
    soft = [round(float(v), 4) for v in my]
    return dict(convex=convex, crossClass=any(0.0 < v < 1.0 for v in soft), labelsInRange=all(0.0 <= v <= 1.0 for v in soft),
                parityMaxAbsDiff=parity(model, path, clips))


def baseline_check(clips):
    """The LFCC-GMM baseline on known answers: a 1 s clip gives 99 frames of 60 values, a silent one keeps its one
    loudest frame; two 4-component GMMs fitted on white noise (human) and low-passed noise (synthetic) score
    fresh draws of each on their own side of 0 (the sign is synthetic minus human); on the smoke clips every
    score is finite; the paired EER difference of a model with itself is exactly 0, and of a separating one
    against a random one is negative."""
    import baseline
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(0)
    sos = butter(6, 1000, fs=SR, output="sos")

    def white():
        return 0.1 * rng.standard_normal(SR)

    def low():
        return 10 * sosfilt(sos, 0.1 * rng.standard_normal(SR))

    toy = baseline.LfccGmm(components=4, frames_per_class=5000, seed=0).fit([white() for _ in range(6)] + [low() for _ in range(6)],
                                                                             [0] * 6 + [1] * 6, log=lambda *a: None)
    real = baseline.LfccGmm(components=4, frames_per_class=5000, seed=0).fit([c["audio"] for c in clips], [c["label"] for c in clips],
                                                                              log=lambda *a: None)
    fake = [dict(system=f"s{i % 2}" if i >= 20 else "h", group=f"g{i % 10}") for i in range(40)]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    rand, sep = rng.standard_normal(40), y + 0.01 * rng.standard_normal(40)
    return dict(frames=list(baseline.lfcc(white()).shape), silentFrames=list(baseline.lfcc(np.zeros(SR)).shape),
                humanSide=bool(all(toy.score(white()) < 0 for _ in range(3))), syntheticSide=bool(all(toy.score(low()) > 0 for _ in range(3))),
                realFinite=bool(all(np.isfinite(real.score(c["audio"])) for c in clips)),
                selfDifference=paired_eer_difference(fake, y, rand, rand, n_boot=200),
                separatingDifference=paired_eer_difference(fake, y, rand, sep, n_boot=200)["value"])


def codec_table_check():
    """The codec table on a toy scorer (a window's logit is its mean sample times 50, so coded audio scores
    differently from draw to draw): with two draws, each codec row holds both draws' figures, its mean is
    theirs and lies in its range; the "none" row has no draws; every draw is in the trace, draw 0 under the
    row names that the report used before draws were averaged."""
    global TRACE
    rng = np.random.default_rng(5)
    test = [dict(audio=(rng.standard_normal(SR * 2) * 0.1).astype(np.float32), label=i % 2, split="test", system="s", group="g",
                 source=f"t{i}") for i in range(6)]
    xtest = [dict(audio=(rng.standard_normal(SR) * 0.1).astype(np.float32), label=0, split="xtest", system="x", group="x",
                  source=f"x{i}") for i in range(20)]
    trace_keys(test)
    trace_keys(xtest)
    labels = np.array([c["label"] for c in test])
    # G.729 has bounds of its own (decision.byCodec): its rows are scored at them too, no other row is.
    d = dict(dropLlr=1.0, humanLlr=-1.0, evidenceWeight=0.5, byCodec={"g729": dict(dropLlr=2.0, warnLlr=1.0, humanLlr=-2.0)})
    cal = dict(scale=1.0, bias=0.0)

    def run(w):
        return w.mean(axis=1) * 50.0

    TRACE = []
    plain_ll, plain_xl = score_clips(run, test), score_clips(run, xtest)
    rows = codec_rows(run, cal, d, 8, test, labels, xtest, plain_ll, plain_xl, draws=2)
    trace, TRACE = TRACE, None
    for codec, row in rows.items():
        if codec == "none":
            if "draws" in row:
                raise SystemExit("codec table: the none row has draws")
            continue
        if len(row["draws"]) != 2:
            raise SystemExit(f"codec table: {codec} has {len(row['draws'])} draws, not 2")
        for m in (m for m in CODEC_METRICS if m in row):
            vals = [r[m] for r in row["draws"]]
            if abs(row[m] - float(np.mean(vals))) > 1e-12 or row["range"][m] != [min(vals), max(vals)]:
                raise SystemExit(f"codec table: {codec} {m} is not the mean and range of its draws")
    tags = sorted({t["row"] for t in trace})
    want = sorted(f"codec {c}{' draw 1' if k else ''}{x}" for c in [*EVAL_CODECS, *DIRECT_CODECS] for k in (0, 1)
                  for x in ("", ", other-language humans"))
    if tags != want:
        raise SystemExit(f"codec table: trace rows {tags}, expected {want}")
    # Per codec: does draw 1 give any test clip another mean logit than draw 0?
    differ = {c: any(x["meanLogit"] != y["meanLogit"] for x, y in zip([t for t in trace if t["row"] == f"codec {c}"],
                                                                    [t for t in trace if t["row"] == f"codec {c} draw 1"]))
              for c in [*EVAL_CODECS, *DIRECT_CODECS]}
    own = sorted(c for c, row in rows.items() if "humanFalseDropRateAtCodecBound" in row and "otherLanguageFalseDropRateAtCodecBound" in row)
    # decision.byCodec as `all` and `recal` fit it: the bound rule on humans coded through G.729.
    fit = codec_decision(run, xtest, 1.0, 0.0, "g729")
    if not (1.0 <= fit["dropLlr"] <= 15.0 and fit["warnLlr"] == round(fit["dropLlr"] / 2, 2) and fit["humanLlr"] == -fit["dropLlr"]):
        raise SystemExit(f"decision.byCodec: bounds out of shape: {fit}")
    return dict(codecs=sorted(c for c in rows if c != "none"), drawsDiffer=differ, traceRows=len(tags), atCodecBound=own,
                codecDecisionKeys=sorted(fit))


def uncertainty_check():
    """The interval code on made-up scores whose answers are known: perfectly separated classes give a
    zero-width EER interval; two synthetic systems, one always caught and one never, give a caught-rate
    bootstrap interval of [0, 1] (the system is the unit) against a narrow binomial one; 1 drop in 300
    human clips has the textbook Clopper-Pearson interval."""
    hum = [dict(system="h", group=f"g{i % 30}") for i in range(300)]
    syn = [dict(system=f"s{i % 2}", group="x") for i in range(40)]
    labels = np.r_[np.zeros(300), np.ones(40)]
    separated = uncertainty(hum + syn, labels, np.r_[np.linspace(-5, -1, 300), np.linspace(1, 5, 40)], ["human"] * 340, n_boot=200)
    verdicts = ["synthetic"] + ["human"] * 299 + ["synthetic" if c["system"] == "s0" else "unsure" for c in syn]
    split = uncertainty(hum + syn, labels, np.r_[np.linspace(-5, -1, 300), np.linspace(1, 5, 40)], verdicts, n_boot=400)
    return dict(separatedEer=separated["metrics"]["eer"]["bootstrap95"], separatedAuc=separated["metrics"]["auc"]["bootstrap95"],
                caughtBootstrap=split["metrics"]["syntheticCaughtRate"]["bootstrap95"],
                caughtBinomial=split["metrics"]["syntheticCaughtRate"]["binomial95"],
                dropBinomial=split["metrics"]["humanFalseDropRate"]["binomial95"], clusters=split["clusters"])


def mobile_codec_check(clips):
    """--mobile-codec and the codec table: every codec of EVAL_CODECS (MOBILE_CODECS and G.729) codes three clips in one run and gives
    each back at its length, aligned (correlation with the original above 0.5) and changed (below 0.9999),
    and the same audio when run again;
    then one training step cuts every crop from a coded copy."""
    global MOBILE_CODEC
    xs = [c["audio"][: SR * 3] for c in clips[:3]]
    out = {}
    for codec in EVAL_CODECS:
        ys = mobile_codec_many(xs, codec)
        r = [float(np.corrcoef(x, y)[0, 1]) for x, y in zip(xs, ys)]
        if [len(y) for y in ys] != [len(x) for x in xs] or not all(np.all(np.isfinite(y)) for y in ys) or not all(0.5 < v < 0.9999 for v in r):
            raise SystemExit(f"{codec}: coded copies are broken (lengths {[len(y) for y in ys]}, correlations {r})")
        if not all(np.array_equal(y, z) for y, z in zip(ys, mobile_codec_many(xs, codec))):
            raise SystemExit(f"{codec}: coding the same clips twice gave different audio (sox without -R dithers from the clock)")
        # Dither draw 1 (the codec table's second draw): aligned too, repeatable, and not draw 0's audio.
        y1 = mobile_codec_many(xs, codec, draw=1)
        r1 = [float(np.corrcoef(x, y)[0, 1]) for x, y in zip(xs, y1)]
        if [len(y) for y in y1] != [len(x) for x in xs] or not all(0.5 < v < 0.9999 for v in r1):
            raise SystemExit(f"{codec}: draw 1 copies are broken (lengths {[len(y) for y in y1]}, correlations {r1})")
        if not all(np.array_equal(y, z) for y, z in zip(y1, mobile_codec_many(xs, codec, draw=1))):
            raise SystemExit(f"{codec}: draw 1 is not repeatable")
        if any(np.array_equal(y, z) for y, z in zip(ys, y1)):
            raise SystemExit(f"{codec}: draw 1 coded the same audio as draw 0")
        out[codec] = round(min(r + r1), 3)
    # codec-bound --direct: the gateway's G.729 path gives each clip back at its length, 5 ms late (G.729's
    # look-ahead, 40 samples, as the gateway hears it) and otherwise aligned with the same line without a
    # codec (correlation above 0.5), repeatable per seed and draw; a lost frame changes the audio only
    # from its own frames on.
    x = xs[0]
    y = g729_trunk_channel(x, np.random.default_rng(5), 0)
    line = np.clip(line_impairments(x, np.random.default_rng(5)), -1, 1)
    r = float(np.corrcoef(line[:-40], y[40:])[0, 1])
    if len(y) != len(x) or not np.all(np.isfinite(y)) or not 0.5 < r < 0.9999:
        raise SystemExit(f"g729 direct path: broken (length {len(y)} of {len(x)}, correlation {r})")
    if not np.array_equal(y, g729_trunk_channel(x, np.random.default_rng(5), 0)):
        raise SystemExit("g729 direct path: not repeatable for one seed and draw")
    pcm = tpdf_quantise(np.clip(x, -1, 1) * 0.3, 0)
    erased = np.zeros((len(pcm) + 79) // 80, dtype=bool)
    erased[10:14] = True  # one 20 ms packet lost twice over: frames 10-13
    a, b = g729_roundtrip(pcm), g729_roundtrip(pcm, erased)
    if not np.array_equal(a[:800], b[:800]) or np.array_equal(a[800:1120], b[800:1120]):
        raise SystemExit("g729 direct path: an erased frame did not change the decoded audio from that frame on only")
    out["g729-direct"] = round(r, 3)
    for c, y in zip(clips, mobile_codec_many([c["audio"] for c in clips], "gsm-fr")):
        c["coded"] = y
    MOBILE_CODEC = 1.0
    train(clips, 1, 4, width=8)
    MOBILE_CODEC = 0.0
    return out


def wide_local_tts_check(out):
    """--local-tts wide: the text sources parse, and each festival voice and one espeak-ng Mandarin variant
    synthesise (one clip each, into out, at 8 kHz)."""
    en, zh = local_tts_texts()
    jobs = wide_local_tts_jobs()
    picks = {f"festival:{v}": next(j for j in jobs if j[0] == "local-festival" and f"(voice_{v})" in j[2][2]) for v in FESTIVAL_VOICES}
    picks["espeak-ng:zh"] = next(j for j in jobs if j[0] == "espeak-ng" and j[1] == "zh")
    seconds = {}
    for k, (label, (system, lang, cmd, text)) in enumerate(picks.items()):
        raw = os.path.join(out, f"wide-{k}.wav")
        synthesise(system, cmd, text, raw)
        x = _read_8k(raw)
        seconds[label] = round(len(x) / SR, 2)
    return dict(englishTexts=len(en), mandarinTexts=len(zh), jobs=len(jobs), seconds=seconds)


def gan_ablation_check():
    """--gan-ablation moves only non-test systems into training and no test system's clip there
    (manifest only): counts of the rows it trains on and drops."""
    rows = list(csv.DictReader(open(os.path.join(CORPUS, "manifest.csv"), newline="")))
    sides = [(gan_ablation_side(r), r) for r in rows]
    trained = [r for side, r in sides if side == "train"]
    leaked = sorted({r["system"] for r in trained} & (TEST_SYSTEMS | set(SPLITS["families"]["test"])))
    if leaked or not trained:
        raise SystemExit(f"--gan-ablation rule trains on test systems {leaked} or on nothing")
    return {"train": len(trained), "drop": sum(side == "drop" for side, _ in sides)}


def dialogue_check():
    """The acted dialogue loads and splits by language, and no voice group is on both sides."""
    clips = dialogue_human()
    groups = {}
    for c in clips:
        groups.setdefault(c["split"], set()).add(c["group"])
    return dict(clips={k: sum(c["split"] == k for c in clips) for k in sorted(groups)},
                groupsOnBothSides=sorted(set.intersection(*groups.values())) if groups else None,
                languages={k: sorted({c["language"] for c in clips if c["split"] == k}) for k in sorted(groups)})


def tuxpaint_check():
    """--tuxpaint's clips (three a language, to stay quick) load and split by language, no language on both
    sides, and each validation language is a drop-bound population of its own."""
    clips = tuxpaint_human(per_language=3)
    langs = {k: sorted({c["language"] for c in clips if c["split"] == k}) for k in sorted({c["split"] for c in clips})}
    return dict(languages=langs, clips={k: sum(c["split"] == k for c in clips) for k in langs},
                languagesOnBothSides=sorted(set.intersection(*(set(v) for v in langs.values()))) if langs else None,
                minSeconds=round(min(len(c["audio"]) for c in clips) / SR, 2),
                valPopulations=sorted({human_population(c) for c in clips if c["split"] == "val"}))


def decision_check():
    """choose_decision on made-up LLRs: 200 clearly human clips of one population and 60 of another, two of
    which keep scoring LLR 1.0 (0.5 evidence a window; 11 windows reach 5.5). Pooled, the two are 0.8% of
    260 and a bound of 1.0 passes; per population they are 3.3% of 60, so the bound has to clear 5.5."""
    llrs = [np.full(11, -5.0)] * 200 + [np.full(11, 1.0)] * 2 + [np.full(11, -5.0)] * 58
    labels = [0] * 260
    pops = ["easy"] * 200 + ["hard"] * 60
    return dict(pooled=choose_decision(llrs, labels, 0.5)["dropLlr"], perPopulation=choose_decision(llrs, labels, 0.5, populations=pops)["dropLlr"])


def seen_split_check():
    """Every SEEN_RULES system splits into a non-empty training side and held-out side whose groups
    are disjoint and belong to that system alone (manifest only, no audio read)."""
    rows = list(csv.DictReader(open(os.path.join(CORPUS, "manifest.csv"), newline="")))
    out = {}
    for system in SEEN_RULES:
        sides = seen_sides(rows, system)
        if set(sides) != {"train", "seentest"}:
            raise SystemExit(f"seen-system rule for {system} does not split its groups: {sides}")
        out[system] = {k: sum(r["system"] == system and r["group"] in v for r in rows) for k, v in sorted(sides.items())}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=["all", "prep", "eval", "recal", "baseline", "smoke", "codec-bound", "vocoder-data"])
    p.add_argument("--codec", default="g729", help="codec-bound: the codec of EVAL_CODECS to fit a drop bound for")
    p.add_argument("--direct", action="store_true", help="codec-bound: the gateway's direct G.729 path (no G.711 channel after the codec)")
    p.add_argument("--write", action="store_true", help="codec-bound: write the fitted bounds into the model's JSON as decision.byCodec (needs --version)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocoded", type=int, default=450)
    p.add_argument("--neural-vocoded", type=int, default=0, help="clips resynthesised by the trained neural vocoder (0 = none)")
    p.add_argument("--vocoder-steps", type=int, default=3000, help="training steps of each copy-synthesis vocoder")
    p.add_argument("--vocoder-archs", default="istft,upsample", help="copy-synthesis vocoders: istft (Vocos-style), upsample (HiFi-GAN-style)")
    p.add_argument("--vocoder-gan", action="store_true", help="train the copy-synthesis vocoders with a multi-resolution spectrogram discriminator")
    p.add_argument("--vocoder-weights", default=None, help="folder of copy-synthesis vocoders trained by models/gpu_vocoders.py, loaded instead of training --vocoder-archs (needs --neural-vocoded)")
    p.add_argument("--vocoded-share", type=float, default=0.0, help="share of synthetic draws from copy-synthesis (0 = per-system balance)")
    p.add_argument("--front", choices=["spectrogram", "raw"], default="spectrogram", help="spectrogram (net.Detector: filterbank in the graph, --bands) or raw (net.RawDetector: learned sinc filters on the waveform, RawNet2/AASIST-L class; --width default 32 there)")
    p.add_argument("--bands", choices=["mel", "linear"], default="mel", help="front-end filterbank (48 mel or 48 linear bands)")
    p.add_argument("--extra-human", action="store_true", help="add the human recordings of EXTRA_HUMAN_PACKAGES (fetched with apt-get download)")
    p.add_argument("--tuxpaint", action="store_true", help="add Tux Paint's spoken stamp descriptions: TUXPAINT_SPLIT's languages to train and val (twenty-eighth round)")
    p.add_argument("--phase", action="store_true", help="add the phase-coherence maps to the front end (see net.LogMel)")
    p.add_argument("--fine", action="store_true", help="add the fine-structure maps (harmonic and noise ripple of the log spectrum per band) to the front end (see net.quefrency_lifters)")
    p.add_argument("--loss", choices=["bce", "oc"], default="bce", help="binary cross-entropy or OC-softmax")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, crops, channel draws); data preparation is fixed")
    p.add_argument("--val-split", choices=sorted(SPLITS), default="legacy", help="which held-out systems validate (see SPLITS)")
    p.add_argument("--seen-systems", default=None,
                   help="comma list of test systems to train on in part (see SEEN_RULES); eval: score the committed model under this protocol")
    p.add_argument("--gan-ablation", action="store_true", help="train on the HiFi-GAN demo's ablation sentences (see GAN_ABLATION_GROUPS)")
    p.add_argument("--speed-perturb", type=float, default=0.0, help="share of training crops resampled by +-5/10 %% (see SPEED_RATIOS)")
    p.add_argument("--mobile-codec", type=float, default=0.0, help="share of training crops cut from a copy through a mobile/VoIP codec (see MOBILE_CODEC)")
    p.add_argument("--codec-bounds", action="store_true", help="fit the drop bound on the validation humans also through each mobile codec (see CODEC_BOUNDS)")
    p.add_argument("--system-weighting", choices=["uniform", "sqrt"], default="uniform", help="how systems are drawn within a class")
    p.add_argument("--local-tts", choices=["basic", "wide", "festival"], default="basic", help="local synthesis: basic (espeak-ng + flite), wide (+ festival, espeak-ng variants, Asterisk and fortunes-zh texts) or festival (basic + the festival clips of wide)")
    p.add_argument("--window-s", type=float, default=1.0, help="model window in seconds (0.5-2); the hop is half of it")
    p.add_argument("--spec-mask", type=float, default=0.0, help="share of training crops with one band run and one frame run masked (see net.SpecMask)")
    p.add_argument("--sam", type=float, default=0.0, help="sharpness-aware minimisation radius rho (e.g. 0.05; 0 = plain AdamW)")
    p.add_argument("--act", choices=["relu", "mfm"], default="relu", help="activation of the spectrogram net: relu, or mfm (Max-Feature-Map, LCNN-style: each conv makes twice the channels and keeps the larger of each pair; about twice the parameters and cost)")
    p.add_argument("--width", type=int, default=None, help="channels of the first conv block (spectrogram: the four blocks have 1, 2, 3 and 4 times it, default 16 = 116k parameters; raw: 1, 1, 2, 2 times, default 32 = 69k parameters)")
    p.add_argument("--no-cmn", action="store_true", help="keep each band's mean log energy in the window (no per-band mean normalisation; only the window's mean level is removed; see net.LogMel)")
    p.add_argument("--domain-adv", type=float, default=0.0, help="domain-adversarial training: the gradient-reversal weight reached at the end (e.g. 0.1; 0 = off; see net.Detector)")
    p.add_argument("--pair-from", choices=["all", "neural"], default="all", help="which copy-synthesis clips --pair-loss pairs: all (Griffin-Lim, LPC and any neural ones) or neural (only --neural-vocoded clips)")
    p.add_argument("--pair-loss", type=float, default=0.0, help="train on (human, copy-synthesis) crop pairs too, with this weight on a supervised contrastive loss over their features (e.g. 0.5; 0 = off)")
    p.add_argument("--mixup", type=float, default=0.0, help="mix every training batch with a shuffled copy of itself, waveform and label, weight ~ Beta(a, a) per crop (e.g. 0.4; 0 = off; see mix_batch)")
    p.add_argument("--distill", default=None, help="comma list of teacher models (ONNX, each with its JSON beside it): train toward their mean calibrated LLR too (see load_teachers)")
    p.add_argument("--distill-weight", type=float, default=0.5, help="--distill: weight of the teachers' soft target against the label (0-1)")
    p.add_argument("--distill-temp", type=float, default=2.0, help="--distill: temperature that softens the teachers' mean LLR")
    p.add_argument("--no-codec-table", action="store_true", help="all/eval: leave the mobile-codec table out of the evaluation (experiment runs; see CODEC_TABLE)")
    p.add_argument("--ema", type=float, default=0.0, help="exponential moving average of the weights (e.g. 0.998; 0 = off)")
    p.add_argument("--gmm-components", type=int, default=512, help="baseline: components of each LFCC-GMM")
    p.add_argument("--version", default=None, help="model version to write (all: default 1.2.0; recal: required, and new)")
    p.add_argument("--out", default=os.path.join(CACHE, "smoke"))
    args = p.parse_args()
    if args.width is None:
        args.width = 32 if args.front == "raw" else 16
    if args.front == "raw" and args.act != "relu":
        p.error("--act applies to the spectrogram net only (--front spectrogram)")
    global VOCODED_SHARE, SYSTEM_WEIGHTING, GAN_ABLATION, SPEED_PERTURB, MOBILE_CODEC, CODEC_BOUNDS, LOCAL_TTS, WIN, HOP, CODEC_TABLE
    CODEC_TABLE = not args.no_codec_table
    WIN = int(round(args.window_s * SR))
    HOP = WIN // 2
    GAN_ABLATION = args.gan_ablation
    LOCAL_TTS = args.local_tts
    set_related({"local-festival"} if LOCAL_TTS != "basic" else set())
    SPEED_PERTURB = args.speed_perturb
    MOBILE_CODEC = args.mobile_codec
    CODEC_BOUNDS = args.codec_bounds
    use_split(args.val_split)
    if args.seen_systems is not None:
        set_seen([x for x in args.seen_systems.split(",") if x])
    VOCODED_SHARE = args.vocoded_share
    SYSTEM_WEIGHTING = args.system_weighting
    {"all": stage_all, "prep": stage_prep, "eval": stage_eval, "recal": stage_eval, "baseline": stage_baseline, "smoke": stage_smoke,
     "codec-bound": stage_codec_bound, "vocoder-data": stage_vocoder_data}[args.stage](args)


if __name__ == "__main__":
    main()
