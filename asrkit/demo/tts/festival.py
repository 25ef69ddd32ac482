"""festival: one process per batch of requests, driven by a generated Scheme script that prints each
utterance's Segment and Word relations.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Sequence, Tuple

import soundfile as sf

from asrkit.demo.tts.engine import STRESS_PATH, WORD_END_PATH, WORD_START_PATH, EngineOutput, EngineSegment, EngineWord
from asrkit.demo.tts.voices import (FESTIVAL_HTS, FESTIVAL_VOICE_DIRS, FESTIVAL_VOICES_ROOT, MissingDependencyError,
                                    SynthesisRequest, Voice)

_FESTIVAL_LEXICON = Path("/usr/share/festival/dicts/cmu")

_FESTIVAL_PRELUDE = """
(voice_{voice})
(define asrkit-stretch (Parameter.get 'Duration_Stretch))
(define asrkit-lr-params int_lr_params)
(define asrkit-hts-params {hts_params})
(define (asrkit-f0-params mean)
  (list (list 'target_f0_mean mean)
        (assoc 'target_f0_std asrkit-lr-params)
        (assoc 'model_f0_mean asrkit-lr-params)
        (assoc 'model_f0_std asrkit-lr-params)))
(define (asrkit-say text wavfile)
  ;; Utterance is a special form that does not evaluate its arguments.
  (let ((utt (utt.synth (eval (list 'Utterance 'Text text)))))
    (utt.save.wave utt wavfile 'riff)
    (mapcar
     (lambda (s) (format t "asrkit-seg %s %s %s\\n" (item.name s) (item.feat s 'end) (item.feat s "{stress}")))
     (utt.relation.items utt 'Segment))
    (mapcar
     (lambda (w)
       (format t "asrkit-word %s %s %s\\n" (item.feat w "{word_start}") (item.feat w "{word_end}") (item.name w)))
     (utt.relation.items utt 'Word))
    (format t "asrkit-end\\n")))
"""


def check_voice(voice: Voice) -> None:
    """Raise :class:`MissingDependencyError` naming the Debian package of a missing binary, lexicon or voice."""
    if shutil.which("festival") is None:
        raise MissingDependencyError("the 'festival' binary is missing: apt-get install festival")
    if not _FESTIVAL_LEXICON.is_dir():
        raise MissingDependencyError("festival's CMU lexicon is missing: apt-get install festlex-cmu festlex-poslex")
    if not (FESTIVAL_VOICES_ROOT / FESTIVAL_VOICE_DIRS[voice.name]).is_dir():
        raise MissingDependencyError(f"festival voice {voice.name} is missing: apt-get install {voice.package}")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_script(voice: Voice, requests: Sequence[SynthesisRequest], wav_dir: Path) -> str:
    hts_params = "cmu_us_slt_arctic_hts::hts_engine_params" if voice.engine == FESTIVAL_HTS else "nil"
    lines = [
        _FESTIVAL_PRELUDE.format(
            voice=voice.name,
            hts_params=hts_params,
            stress=STRESS_PATH,
            word_start=WORD_START_PATH,
            word_end=WORD_END_PATH,
        )
    ]
    for index, request in enumerate(requests):
        style = request.style
        # Every request sets all parameters, so no setting leaks from one request into the next.
        if voice.engine == FESTIVAL_HTS:
            # The HTS engine ignores Duration_Stretch; its "-r" option is a speed factor.
            speed = 1.0 / style.duration_scale
            lines.append(f'(set! hts_engine_params (append asrkit-hts-params (list (list "-r" {speed!r}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch (* asrkit-stretch {style.duration_scale!r}))")
            f0 = "asrkit-lr-params" if style.f0_mean is None else f"(asrkit-f0-params {style.f0_mean!r})"
            lines.append(f"(set! int_lr_params {f0})")
        lines.append(f"(asrkit-say {_scheme_string(request.text)} {_scheme_string(str(wav_dir / f'{index}.wav'))})")
    return "\n".join(lines) + "\n"


def synthesize(voice: Voice, requests: Sequence[SynthesisRequest]) -> List[EngineOutput]:
    """Synthesise every request with ``voice`` in one festival process; outputs in the requests' order."""
    check_voice(voice)
    with tempfile.TemporaryDirectory(prefix="asrkit-festival-") as tmp:
        wav_dir = Path(tmp)
        script = wav_dir / "synth.scm"
        script.write_text(_festival_script(voice, requests, wav_dir))
        result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
        reports = _parse_festival_output(result.stdout)
        if result.returncode != 0 or len(reports) != len(requests):
            raise RuntimeError(
                f"festival ({voice.name}) synthesised {len(reports)} of {len(requests)} sentences "
                f"(exit code {result.returncode}): {result.stderr.strip()[-2000:] or result.stdout.strip()[-2000:]}"
            )
        outputs = []
        for index, (segments, words) in enumerate(reports):
            audio, sample_rate = sf.read(wav_dir / f"{index}.wav", dtype="int16")
            outputs.append(EngineOutput(audio, sample_rate, segments, words))
        return outputs


def _parse_festival_output(stdout: str) -> List[Tuple[List[EngineSegment], List[EngineWord]]]:
    reports = []
    segments: List[EngineSegment] = []
    words: List[EngineWord] = []
    for line in stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "asrkit-seg":
            segments.append(EngineSegment(fields[1], float(fields[2]), fields[3] != "0"))
        elif fields[0] == "asrkit-word":
            words.append(EngineWord(" ".join(fields[3:]), float(fields[1]), float(fields[2])))
        elif fields[0] == "asrkit-end":
            reports.append((segments, words))
            segments, words = [], []
    return reports

