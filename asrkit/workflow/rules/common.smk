# Shared by all rules: the interpreter, the config's lists, manifest names and the stage markers.
# Rules pass the config sections they read as params: changing one reruns exactly the rules that read it
# (Snakemake's params rerun trigger).

PY = sys.executable  # the environment snakemake runs in (.venv): stage scripts run with it
DEVICE = config["device"]  # where training, decoding and sensitivity compute: passed on the command line, so
# that changing it reruns nothing (it is not a param)
SPLITS = ["train", "dev", "test"]
DECODING = config["decoding"]
MODELS = config["models"]
if DEVICE != "cpu" and set(MODELS) & {"transducer", "pretrained_transducer"}:
    # A transducer on a GPU needs an RNN-T loss built with CUDA: say so now, not once CTC has trained for hours.
    from asrkit.device import resolve_device
    from asrkit.model.rnnt_backend import check_device
    check_device(resolve_device(DEVICE))


def manifest(kind, split):
    return f"data/manifests/{RECIPE}_{kind}_{split}.jsonl.gz"


def stage_done(n):
    return f"logs/stages/stage_{n}.done"


wildcard_constraints:
    split="|".join(SPLITS),
