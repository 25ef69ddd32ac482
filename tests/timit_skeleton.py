"""A TIMIT-shaped corpus of tiny utterances: the real layout and speaker lists, cheap audio, for tests.

Unlike the demo corpus (real speech synthesis, minutes), this writes the full LDC speaker structure
(462 train speakers, 168 test speakers of which 50 dev and 24 core test) in seconds, so that the
standard-set logic and the bad-input checks run on a corpus of the real shape.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import soundfile
from lhotse.recipes.timit import get_speakers

from asrkit.config import (AugmentationConfig, FeatureConfig, ModelConfig, TrainingConfig, TransducerConfig,
                           UnitsConfig, to_flags)
from asrkit.training.train import TrainingSetup

UTTERANCES = ["SA1", "SA2", "SI943", "SI1573", "SI2203", "SX43", "SX133", "SX223", "SX313", "SX403"]
NUM_SAMPLES = 4800
#: the recipe's default features, as the tests compute them on a skeleton corpus
FEATURES = FeatureConfig.from_dict({"type": "fbank", "num_mel_bins": 40, "use_energy": True, "deltas": True})
#: the skeleton's units
UNITS = {"type": "phones", "phone_set": 60}
PHONES = [(0, 1200, "h#"), (1200, 2000, "s"), (2000, 2400, "q"), (2400, 3400, "iy"), (3400, 4800, "h#")]


def write_utterance(speaker_dir: Path, utt: str, seed: int, lower_case: bool = False,
                    riff_copy: bool = False) -> None:
    """The four files of an utterance; with ``riff_copy``, also the Kaggle copy's RIFF ``X.WAV.wav``."""
    name = utt.lower() if lower_case else utt
    ext = (lambda e: e.lower()) if lower_case else (lambda e: e)
    audio = (np.random.RandomState(seed).randn(NUM_SAMPLES) * 1000).astype(np.int16)
    soundfile.write(str(speaker_dir / f"{name}{ext('.WAV')}"), audio, 16000, format="NIST", subtype="PCM_16")
    if riff_copy:
        soundfile.write(str(speaker_dir / f"{name}{ext('.WAV')}.wav"), audio, 16000, format="WAV", subtype="PCM_16")
    (speaker_dir / f"{name}{ext('.PHN')}").write_text("".join(f"{s} {e} {p}\n" for s, e, p in PHONES))
    (speaker_dir / f"{name}{ext('.WRD')}").write_text("1200 3400 see\n")
    (speaker_dir / f"{name}{ext('.TXT')}").write_text(f"0 {NUM_SAMPLES} See.\n")


def invented_speaker(first_initial: str, i: int) -> str:
    """A TIMIT-style speaker ID (sex, three initials, digit) that no real TIMIT speaker has."""
    return f"{'MF'[i % 2]}{first_initial}{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}0"


def write_timit_skeleton(root: Path, num_train_speakers: int = 462, num_other_test_speakers: int = 94,
                         num_dev_speakers: int = 50, num_test_speakers: int = 24, lower_case: bool = False,
                         data_folder: bool = False, utterances: Optional[list] = None, kaggle: bool = False) -> Path:
    """Write the corpus under ``root`` and return the directory holding TRAIN/ and TEST/ (or data/).

    ``kaggle``: the layout of the Kaggle copy of TIMIT: everything in data/, a RIFF copy ``X.WAV.wav`` beside each
    SPHERE ``X.WAV``, and ``train_data.csv`` and ``test_data.csv`` at the top."""
    data_folder = data_folder or kaggle
    dev, test = get_speakers()
    speakers = {
        "TRAIN": [invented_speaker("Z", i) for i in range(num_train_speakers)],
        "TEST": [s.upper() for s in dev[:num_dev_speakers] + test[:num_test_speakers]]
        + [invented_speaker("Y", i) for i in range(num_other_test_speakers)],
    }
    base = root / ("data" if data_folder else "")
    seed = 0
    for part, names in speakers.items():
        for i, speaker in enumerate(names):
            region = f"DR{i % 8 + 1}"
            case = (lambda s: s.lower()) if lower_case else (lambda s: s)
            speaker_dir = base / case(part) / case(region) / case(speaker)
            speaker_dir.mkdir(parents=True)
            for utt in utterances or UTTERANCES:
                seed += 1
                write_utterance(speaker_dir, utt, seed, lower_case, riff_copy=kaggle)
    if kaggle:  # the Kaggle copy's own index of the files (its columns, in part)
        for part in speakers:
            speaker_dir = next((base / part).glob("*/*"))
            (root / f"{part.lower()}_data.csv").write_text(
                "index,test_or_train,dialect_region,speaker_id,filename,path_from_data_dir,is_converted_audio\n"
                + "".join(f"{i},{part},{speaker_dir.parent.name},{speaker_dir.name},{f.name},"
                          f"{f.relative_to(base)},{f.name.endswith('.WAV.wav')}\n"
                          for i, f in enumerate(sorted(speaker_dir.iterdir()))))
    return root


def training_setup(settings: Dict[str, Any]) -> TrainingSetup:
    """What asrkit.training.train trains on the skeleton's features and units, from ``settings``: its seed,
    model_type and the model, training and (optional) transducer and augmentation sections, given in part."""
    return TrainingSetup(settings["seed"], UnitsConfig.from_dict(UNITS), FEATURES,
                         AugmentationConfig.from_dict(settings.get("augmentation")), settings["model_type"],
                         ModelConfig.from_dict(settings["model"]),
                         TransducerConfig.from_dict(settings.get("transducer")),
                         TrainingConfig.from_dict(settings["training"]))


def training_flags(settings: Dict[str, Any]) -> List[str]:
    """The flags of ``python -m asrkit.training.train`` for :func:`training_setup`'s ``settings``."""
    features = {k: v for k, v in asdict(FEATURES).items() if k not in FeatureConfig.run_only_keys()}
    return ["--seed", str(settings["seed"]), "--model-type", settings["model_type"], *to_flags("units", UNITS),
            *to_flags("features", features), *to_flags("model", settings["model"]),
            *to_flags("transducer", settings.get("transducer", {})), *to_flags("training", settings["training"]),
            *to_flags("augmentation", settings.get("augmentation", {}))]
