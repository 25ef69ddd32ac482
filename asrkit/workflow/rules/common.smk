# Shared by all rules: the interpreter, the config's lists, manifest names, stage settings as flags.
# Rules pass the config sections they read as params (as the flags of `flags`): changing one
# reruns exactly the rules that read it (Snakemake's params rerun trigger).
import shlex

from asrkit.config import AugmentationConfig, FeatureConfig, NgramLmConfig, TrainingConfig, TransducerConfig, \
    has_heldout_set, to_flags
from asrkit.data.manifests import manifest_path

PY = sys.executable  # the environment snakemake runs in (.venv): stage scripts run with it
DEVICE = config["device"]  # where training, decoding and sensitivity compute: passed on the command line, so
# that changing it reruns nothing (it is not a param)
DECODING = config["decoding"]
# The held-out test set: demo corpus speakers of TTS voices that no train, dev or test speaker has.
HELDOUT = has_heldout_set(config)  # decoding.splits may name it only then (asrkit.config.check_across_keys)
SPLITS = ["train", "dev", "test"] + (["heldout"] if HELDOUT else [])
MODELS = config["models"]
if DEVICE != "cpu" and any(RECIPE_MODELS[m].type == "transducer" for m in MODELS):

    # A transducer on a GPU needs an RNN-T loss built with CUDA: say so before the first job, not once CTC has
    # trained for hours. Not while the workflow is read: the check imports torch (1 to 2 s), which a rerun with
    # nothing to do (onstart is not called then) should not pay.
    onstart:
        from asrkit.device import resolve_device
        from asrkit.model.rnnt_backend import check_device
        check_device(resolve_device(DEVICE))


def manifest(kind, split):
    return str(manifest_path("data/manifests", RECIPE, kind, split))


def flags(section, values):
    """Settings of a config section as a stage command's typed flags (`--<section>.<key> value`, quoted for the
    shell; section None: keys outside the sections, `--<key> value`); the command gives the keys left out their
    defaults."""
    return shlex.join(to_flags(section, values))


wildcard_constraints:
    split="|".join(SPLITS),
