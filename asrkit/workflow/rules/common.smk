# Shared by all rules: the interpreter, manifest names and the numbered stage targets.
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


wildcard_constraints:
    split="|".join(SPLITS),


# Numbered stages, as in Kaldi's run.sh: `run.sh --stage N --stop-stage M` asks for stage_N .. stage_M.
# Snakemake decides what is stale; a stage whose outputs are up to date is skipped. Each stage rule
# touches a marker once its outputs are complete, so a rerun with nothing changed has nothing to do.
#   0 demo corpus (only when corpus_dir is null)   5 phone LM (prediction network pretraining on tokens)
#   1 manifests, by the recipe's prepare.smk       6 RNN transducer (TRANS)
#   2 features, global mean/variance               7 pretrained transducer (PRETRANS)
#   3 units: tokens (+ folding tables or bpe.model) 8 decode
#   4 CTC                                          9 score, plots, RESULTS.md


def stage_done(n):
    return f"logs/stages/stage_{n}.done"
