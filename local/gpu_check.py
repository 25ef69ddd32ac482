"""The GPU check (``make gpu-check``): install, then run asrkit's GPU paths on a CUDA GPU, each a part that can fail.

On a machine with a CUDA GPU, its torch and nvcc, and no internet: installs asrkit from a bundle
(``make bundle``) into a fresh venv over that torch (``ASRKIT_TORCH=system``; fast_rnnt built with CUDA for the
GPU present, kaldifeat for the CPU, all cores), writes a TIMIT-layout corpus of synthetic audio (the test
suite's skeleton writer: no speech synthesis, which such machines cannot install), then:

- versions: fails unless torch sees a CUDA GPU and fast_rnnt is built with CUDA;
- the recipe's stages 1-9 with ``device: cuda`` and float16 mixed precision (``training.amp: float16``, the
  loss scaler): CTC, phone LM, TRANS, PRETRANS, decoding, scoring and the sensitivity figure (autograd through
  the LSTM of a model in eval mode, which cuDNN's RNN cannot do);
- a 1-process torchrun training (a process group on nccl, DistributedDataParallel), float16;
- a noise-phase epoch (weight noise on, so the per-utterance loop runs on CUDA) in bfloat16;
- a resume on CUDA of a checkpoint written on the CPU;
- ``asrkit transcribe`` on CUDA against the same model on the CPU: the same phones, or within 1 point of PER;
- ``asrkit export``, its file loaded in a fresh process with a plain ``torch.jit.load`` (no map_location) and
  run on the CPU and on the GPU.

Every part is timed and runs even when one before it failed, where it can; the table goes to stdout and, with
every part's log, to $GPU_CHECK_DIR (table.md, logs.txt). The exit status is 1 if any part failed.

Environment:
  GPU_CHECK_DIR     where table.md and logs.txt go (default gpu-check/)
  GPU_CHECK_DEVICE  cuda (default), or cpu: a dry run of every part the CPU can run (the venv $VENV as it is,
                    no install or build, bfloat16 where the GPU runs float16, gloo instead of nccl)
  GPU_CHECK_WORK    the recipe's working folder (default: a new temporary folder)
  VENV              the venv to install into / use (default /tmp/asrkit-gpu-check-venv; cpu: .venv)
  ASRKIT_BUNDLE     the bundle to install from (default bundle/)
  PYTHON            the Python whose torch is used (default python3)

Runs with the standard library alone (the venv does not exist before the first part).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
STAGES = {1: "manifests", 2: "features", 3: "units", 4: "CTC", 5: "phone LM", 6: "TRANS", 7: "PRETRANS",
          8: "decoding", 9: "scoring"}


def amp_dtype(device: str) -> str:
    """The mixed precision of the recipe's trainings: float16 with the loss scaler on CUDA; bfloat16 on the CPU,
    whose LSTM kernels have no float16 version."""
    return "float16" if device == "cuda" else "bfloat16"


def tiny_config(corpus: Path, device: str) -> str:
    """The recipe's config for the check: all three models, small, on ``device``, in mixed precision."""
    return json.dumps({
        "corpus_dir": str(corpus), "device": device, "num_jobs": min(4, os.cpu_count() or 1),
        "models": ["ctc", "transducer", "pretrained_transducer"],
        "data": {"require_standard_sizes": False},
        "model": {"num_layers": 2, "hidden_size": 64, "stack_frames": 3, "dropout": 0.1},
        "transducer": {"decoder_embedding_dim": 32, "decoder_hidden_size": 64, "joiner_dim": 64,
                       "warmup_batches": 2},
        "phone_lm": {"schedule": "fixed", "num_epochs": 2},
        # 20 small batches an epoch: enough steps for every model to learn the corpus's one phone sequence (the
        # scoring stage refuses a model that emits only silence)
        "training": {"schedule": "fixed", "init": "torch", "grad_clip": 5.0, "num_epochs": 6, "max_duration": 3,
                     "optimizer": "adam", "lr": 0.005, "weight_noise_std": 0.0,
                     "amp": amp_dtype(device), "num_processes": 1},
        "decoding": {"beams": [4]},
    }, indent=1)  # YAML is a superset of JSON


class Check:
    """Runs the parts, times them, keeps their logs, and writes the table."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: List[Tuple[str, bool, float, str]] = []
        self.logs: List[str] = []

    def part(self, name: str, run: Callable[[], Tuple[bool, str, str]]) -> bool:
        """Run one part: ``run()`` returns (ok, a short note, its log)."""
        print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
        start = time.time()
        try:
            ok, note, log = run()
        except Exception as error:  # a part that crashes is a failed part; the others still run
            ok, note, log = False, f"{type(error).__name__}: {error}", repr(error)
        seconds = time.time() - start
        self.rows.append((name, ok, seconds, note))
        self.logs.append(f"===== {name}: {'ok' if ok else 'FAIL'} ({seconds:.1f} s) {note}\n{log}\n")
        print(f"[gpu-check] {name}: {'ok' if ok else 'FAIL'} ({seconds:.1f} s) {note}", file=sys.stderr, flush=True)
        self.write()
        return ok

    def skip(self, name: str, why: str) -> None:
        self.rows.append((name, False, 0.0, f"not run: {why}"))
        self.write()

    def table(self) -> str:
        lines = ["| part | result | seconds | note |", "|---|---|---|---|"]
        lines += [f"| {name} | {'ok' if ok else 'FAIL'} | {seconds:.1f} | {note} |"
                  for name, ok, seconds, note in self.rows]
        total = sum(seconds for _, _, seconds, _ in self.rows)
        return "\n".join(lines + [f"| total | {'ok' if self.ok else 'FAIL'} | {total:.1f} | |"])

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _, _ in self.rows)

    def write(self) -> None:
        """Rewrite table.md and logs.txt (each atomically): what is there after a kill is what had run."""
        for name, text in (("table.md", self.table() + "\n"), ("logs.txt", "".join(self.logs))):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(self.out / name)


def command(argv: List[str], env: Optional[Dict[str, str]] = None, cwd: Path = ROOT,
            timeout: float = 900) -> Tuple[bool, str, str]:
    """Run ``argv``; (exit status 0, the exit status as a note, stdout and stderr)."""
    result = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode == 0, f"exit {result.returncode}", result.stdout + result.stderr


VERSIONS = """
import platform, sys, torch, fast_rnnt, kaldifeat, lhotse, snakemake
print('Python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda,
      '| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
      '| fast_rnnt', fast_rnnt.__version__, 'CUDA' if fast_rnnt.with_cuda() else 'CPU',
      '| kaldifeat', kaldifeat.__version__, '| lhotse', lhotse.__version__, '| snakemake', snakemake.__version__)
if sys.argv[1] == 'cuda' and not (torch.cuda.is_available() and fast_rnnt.with_cuda()):
    sys.exit('no GPU check without a CUDA GPU that torch sees and a fast_rnnt built with CUDA')
"""

#: a TorchScript file loaded as a user would, in a fresh process, without map_location; run on the CPU and on
#: the device
EXPORT_RUN = """
import json, sys, torch
extra = {'asrkit.json': ''}
m = torch.jit.load(sys.argv[1], _extra_files=extra)
dim = json.loads(extra['asrkit.json'])['input_dim']
for device in dict.fromkeys(['cpu', sys.argv[2]]):
    m = m.to(device)
    x = m.normalise(torch.randn(2, 50, dim, device=device))
    out, lengths = m(x, torch.tensor([50, 40], device=device))
    print('forward on', out.device, tuple(out.shape), 'lengths', lengths.tolist())
"""


def main() -> int:
    device = os.environ.get("GPU_CHECK_DEVICE", "cuda")
    if device not in ("cuda", "cpu"):
        print(f"error: GPU_CHECK_DEVICE={device}: expected cuda or cpu", file=sys.stderr)
        return 2
    out = Path(os.environ.get("GPU_CHECK_DIR", ROOT / "gpu-check")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_CHECK_WORK") or tempfile.mkdtemp(prefix="asrkit-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = Path(os.environ.get("VENV", "/tmp/asrkit-gpu-check-venv" if device == "cuda" else ROOT / ".venv"))
    python = str(venv / "bin/python")
    check = Check(out)
    print(f"[gpu-check] device {device}, work folder {work}, venv {venv}, results in {out}", file=sys.stderr)

    if device == "cuda":
        bundle = Path(os.environ.get("ASRKIT_BUNDLE", ROOT / "bundle"))
        installed = check.part(f"install from {bundle.name}/ (fast_rnnt CUDA, kaldifeat CPU builds)", lambda: command(
            ["bash", "local/install.sh"], env={"ASRKIT_TORCH": "system", "ASRKIT_BUNDLE": str(bundle),
                                                "VENV": str(venv), "PYTHON": os.environ.get("PYTHON", "python3")}))
        if not installed:
            check.skip("everything else", "the install failed")
            print(check.table())
            return 1
    check.part("versions" + (": a CUDA GPU and fast_rnnt with CUDA" if device == "cuda" else ""),
               lambda: command([python, "-c", VERSIONS, device]))

    corpus = work / "corpus"
    tests = str(ROOT / "tests")
    check.part("corpus: TIMIT layout, synthetic audio", lambda: command([python, "-c", (
        "import shutil, sys; from pathlib import Path; from timit_skeleton import write_timit_skeleton; "
        "root = Path(sys.argv[1]); shutil.rmtree(root, ignore_errors=True); "
        "write_timit_skeleton(root, num_train_speakers=24, num_other_test_speakers=0, num_dev_speakers=2, "
        "num_test_speakers=3)"), str(corpus)], env={"PYTHONPATH": tests}))
    config = work / "gpu-check.yaml"
    config.write_text(tiny_config(corpus, device))
    recipe = [str(ROOT / "recipes/timit/run.sh"), "--config", str(config), "--dir", str(work / "run")]
    venv_env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "SNAKEMAKE": str(venv / "bin/snakemake")}
    for stage, what in STAGES.items():
        what += f" ({amp_dtype(device)})" if stage in (4, 6, 7) else " (sensitivity figure too)" if stage == 9 else ""
        check.part(f"stage {stage}: {what}", lambda stage=stage: command(
            recipe + ["--stage", str(stage), "--stop-stage", str(stage)], env=venv_env))

    run = work / "run"
    trainer = Trainer(python, run, device)
    check.part(f"torchrun, 1 process ({'nccl' if device == 'cuda' else 'gloo'}), TRANS, {amp_dtype(device)}",
               lambda: trainer.train(work / "torchrun", "transducer", {"training": {"num_processes": 1,
                                                                                    "amp": amp_dtype(device)}},
                                     torchrun=True))
    check.part("noise phase (weight noise 0.075, one utterance at a time), TRANS, bfloat16",
               lambda: trainer.train(work / "noise", "transducer", {"training": {
                   "amp": "bfloat16", "weight_noise_std": 0.075, "weight_noise_start_epoch": 1, "num_epochs": 1}}))
    check.part(f"resume on {device} of a checkpoint written on the CPU, CTC", lambda: trainer.resume_elsewhere(
        work / "resume"))

    wavs = sorted(str(p) for p in (corpus / "TEST").rglob("*.WAV"))[:4]
    for model, method in (("pretrained_transducer", "modified_beam"), ("ctc", "prefix_beam")):
        check.part(f"asrkit transcribe on {device} = on cpu: {model}, {method}",
                   lambda model=model, method=method: same_transcripts(venv, run / "exp" / model, method, device, wavs))
    for model in ("ctc", "pretrained_transducer"):
        exported = work / f"{model}.ts"
        check.part(f"asrkit export, plain torch.jit.load in a new process, run on cpu and {device}: {model}",
                   lambda model=model, exported=exported: run_export(venv, run / "exp" / model, exported, device))
    print(check.table())
    return 0 if check.ok else 1


class Trainer:
    """``python -m asrkit.training.train`` on the recipe run's data, with small settings of its own."""

    #: asrkit.training.train's flags, --<section>.<key> as the recipe's rules write them (asrkit/config.py)
    SECTIONS = {"units": {"type": "phones", "phone_set": 60},
                "features": {"type": "fbank", "num_mel_bins": 40, "use_energy": True, "deltas": True},
                "model": {"num_layers": 2, "hidden_size": 64, "stack_frames": 3, "dropout": 0.0},
                "transducer": {"decoder_embedding_dim": 32, "decoder_hidden_size": 64, "joiner_dim": 64,
                               "warmup_batches": 2},
                "training": {"num_epochs": 2, "max_duration": 3, "optimizer": "adam", "lr": 0.005,
                             "num_threads": os.cpu_count() or 1}}

    def __init__(self, python: str, run: Path, device: str):
        self.python, self.run, self.device = python, run, device

    def command(self, exp_dir: Path, model_type: str, overrides: Dict[str, Dict[str, object]], device: str,
                torchrun: bool = False) -> List[str]:
        sections = {name: {**values, **overrides.get(name, {})} for name, values in self.SECTIONS.items()}
        flags = [item for section, values in sections.items() for key, value in values.items()
                 for item in (f"--{section}.{key}", str(value).lower() if isinstance(value, bool) else str(value))]
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if torchrun else []
        data = self.run / "data"
        return [self.python, *launcher, "-m", "asrkit.training.train", "--device", device, "--seed", "1",
                "--model-type", model_type, "--train-cuts", str(data / "features/cuts_train.jsonl.gz"),
                "--dev-cuts", str(data / "features/cuts_dev.jsonl.gz"), "--stats", str(data / "features/stats.pt"),
                "--tokens", str(data / "lang/tokens.txt"), "--exp-dir", str(exp_dir), *flags]

    def train(self, exp_dir: Path, model_type: str, overrides: Dict[str, Dict[str, object]],
              torchrun: bool = False) -> Tuple[bool, str, str]:
        # feature paths in the manifests are relative to the run's folder
        ok, note, log = command(self.command(exp_dir, model_type, overrides, self.device, torchrun), cwd=self.run)
        return ok and (exp_dir / "model.pt").exists(), note, log

    def resume_elsewhere(self, exp_dir: Path) -> Tuple[bool, str, str]:
        """Train 2 epochs on the CPU, keep only the first epoch's checkpoint, and finish on the device: the
        device is no part of the options, so the run resumes there."""
        ok, note, log = command(self.command(exp_dir, "ctc", {}, "cpu"), cwd=self.run)
        if not ok:
            return ok, f"training on the cpu: {note}", log
        for made in [exp_dir / "model.pt", exp_dir / "history.json",
                     *(p for p in (exp_dir / "checkpoints").iterdir() if p.name != "epoch-1.pt")]:
            made.unlink()
        ok, note, resumed_log = command(self.command(exp_dir, "ctc", {}, self.device), cwd=self.run)
        resumed = "resuming from" in resumed_log and "epoch-1.pt" in resumed_log
        return ok and resumed and (exp_dir / "model.pt").exists(), \
            note if resumed else f"{note}, but it did not resume from epoch-1.pt", log + resumed_log


def edit_distance(a: List[str], b: List[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def same_transcripts(venv: Path, model: Path, method: str, device: str, wavs: List[str]) -> Tuple[bool, str, str]:
    """``asrkit transcribe`` on ``device`` and on the CPU: the same phones, or at most 1 point of PER apart (the
    CPU's as the reference; float kernels differ between devices)."""
    outputs = {}
    for where in dict.fromkeys([device, "cpu"]):
        ok, note, log = command([str(venv / "bin/asrkit"), "transcribe", "--model", str(model), "--method", method,
                                 "--device", where, *wavs])
        if not ok:
            return ok, f"on {where}: {note}", log
        outputs[where] = {line.split("\t")[0]: [item.rsplit("@", 1)[0] for item in line.split("\t")[1].split()]
                          for line in log.splitlines() if "\t" in line}
    reference, hypothesis = outputs["cpu"], outputs[device]
    if sorted(reference) != sorted(hypothesis) or len(reference) != len(wavs):
        return False, "not every file was transcribed on both", repr(outputs)
    errors = sum(edit_distance(reference[f], hypothesis[f]) for f in reference)
    per = 100.0 * errors / max(1, sum(len(phones) for phones in reference.values()))
    return per <= 1.0, f"{errors} phone(s) differ, {per:.2f}% PER between them", repr(outputs)


def run_export(venv: Path, model: Path, exported: Path, device: str) -> Tuple[bool, str, str]:
    """Export ``model`` to TorchScript, then load it in a new process as a user would and run its forward."""
    ok, note, log = command([str(venv / "bin/asrkit"), "export", "--model", str(model), "--output", str(exported)])
    if not ok:
        return ok, note, log
    ok, note, run_log = command([str(venv / "bin/python"), "-c", EXPORT_RUN, str(exported), device])
    return ok, note, log + run_log


if __name__ == "__main__":
    sys.exit(main())
