"""The GPU check (``make gpu-check``): install, then run the tiny TIMIT recipe end to end on a CUDA GPU.

On a machine with a CUDA GPU, its torch and nvcc, and no internet: installs asrkit from a bundle
(``make bundle``) into a fresh venv over that torch (``ASRKIT_TORCH=system``; fast_rnnt built with CUDA for the
GPU present, kaldifeat for the CPU, all cores), writes a TIMIT-layout corpus of synthetic audio (the test
suite's skeleton writer: no speech synthesis, which such machines cannot install), and runs the recipe's
stages 1-9 with ``device: cuda`` and ``training.amp: true``: CTC, phone LM, TRANS, PRETRANS, decoding and
scoring; then a 1-process torchrun training (a process group on nccl, DistributedDataParallel), ``asrkit
transcribe`` on CUDA, and ``asrkit export`` with the TorchScript file run on CUDA.

Every part is timed and runs even when one before it failed, where it can; the table goes to stdout and, with
every part's log, to $GPU_CHECK_DIR (table.md, logs.txt). The exit status is 1 if any part failed.

Environment:
  GPU_CHECK_DIR     where table.md and logs.txt go (default gpu-check/)
  GPU_CHECK_DEVICE  cuda (default), or cpu: a dry run of the same logic on a machine without a GPU (the
                    venv $VENV as it is, no install or build, amp off, gloo instead of nccl)
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


def tiny_config(corpus: Path, device: str) -> str:
    """The recipe's config for the check: all three models, small, on ``device`` (amp on CUDA)."""
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
                     "amp": device == "cuda", "num_processes": 1},
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
    check.part("versions", lambda: command([python, "-c", (
        "import torch, fast_rnnt, kaldifeat, lhotse, snakemake, platform; "
        "print('Python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda, "
        "'| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "
        "'| fast_rnnt', fast_rnnt.__version__, 'CUDA' if fast_rnnt.with_cuda() else 'CPU', "
        "'| kaldifeat', kaldifeat.__version__, '| lhotse', lhotse.__version__, '| snakemake', snakemake.__version__)")]))

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
        check.part(f"stage {stage}: {what}", lambda stage=stage: command(
            recipe + ["--stage", str(stage), "--stop-stage", str(stage)], env=venv_env))

    run = work / "run"
    # asrkit.training.train's flags, --<section>.<key> as the recipe's rules write them (asrkit/config.py)
    sections = {"units": {"type": "phones", "phone_set": 60},
                "features": {"type": "fbank", "num_mel_bins": 40, "use_energy": True, "deltas": True},
                "model": {"num_layers": 2, "hidden_size": 64, "stack_frames": 3, "dropout": 0.0},
                "transducer": {"decoder_embedding_dim": 32, "decoder_hidden_size": 64, "joiner_dim": 64,
                               "warmup_batches": 2},
                "training": {"num_epochs": 2, "max_duration": 3, "optimizer": "adam", "lr": 0.005,
                             "num_processes": 1, "amp": device == "cuda"}}
    settings = ["--seed", "1", "--model-type", "transducer"] + [
        item for section, values in sections.items() for key, value in values.items()
        for item in (f"--{section}.{key}", str(value).lower() if isinstance(value, bool) else str(value))]
    check.part(f"torchrun, 1 process ({'nccl' if device == 'cuda' else 'gloo'}), TRANS", lambda: command([
        python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "asrkit.training.train",
        "--device", device, "--train-cuts", str(run / "data/features/cuts_train.jsonl.gz"),
        "--dev-cuts", str(run / "data/features/cuts_dev.jsonl.gz"), "--stats", str(run / "data/features/stats.pt"),
        "--tokens", str(run / "data/lang/tokens.txt"), "--exp-dir", str(work / "torchrun"),
        *settings, "--training.num_threads", str(os.cpu_count())], cwd=run))  # feature paths are relative

    wavs = sorted(str(p) for p in (corpus / "TEST").rglob("*.WAV"))[:4]
    for model, method in (("pretrained_transducer", "modified_beam"), ("ctc", "prefix_beam")):
        check.part(f"asrkit transcribe on {device}: {model}, {method}", lambda model=model, method=method: command(
            [str(venv / "bin/asrkit"), "transcribe", "--model", str(run / "exp" / model), "--method", method,
             "--device", device, *wavs]))
    for model in ("ctc", "pretrained_transducer"):
        exported = work / f"{model}.ts"
        check.part(f"asrkit export, run on {device}: {model}", lambda model=model, exported=exported: run_export(
            venv, run / "exp" / model, exported, device))
    print(check.table())
    return 0 if check.ok else 1


def run_export(venv: Path, model: Path, exported: Path, device: str) -> Tuple[bool, str, str]:
    """Export ``model`` to TorchScript, then load it on ``device`` and run its forward on random features."""
    ok, note, log = command([str(venv / "bin/asrkit"), "export", "--model", str(model), "--output", str(exported)])
    if not ok:
        return ok, note, log
    ok, note, run_log = command([str(venv / "bin/python"), "-c", (
        "import json, sys, torch; extra = {'asrkit.json': ''}; "
        "m = torch.jit.load(sys.argv[1], map_location=sys.argv[2], _extra_files=extra); "
        "dim = json.loads(extra['asrkit.json'])['input_dim']; "
        "x = m.normalise(torch.randn(2, 50, dim, device=sys.argv[2])); "
        "out, lengths = m(x, torch.tensor([50, 40], device=sys.argv[2])); "
        "print('forward on', out.device, tuple(out.shape), 'lengths', lengths.tolist())"), str(exported), device])
    return ok, note, log + run_log


if __name__ == "__main__":
    sys.exit(main())
