"""Audio after the engine: sox pitch shift and resampling to 16 kHz, time realignment, noise floor."""

import subprocess

import numpy as np

from asrkit.demo.tts.engine import EngineOutput
from asrkit.demo.tts.voices import SpeakingStyle

#: Sample rate of every synthesis returned by this package.
SAMPLE_RATE = 16000
#: Level of the Gaussian noise floor added to every utterance: real recordings are never digitally silent,
#: and all-zero frames give degenerate (minus infinity) log energies.
NOISE_FLOOR_DBFS = -70.0


def _sox(audio: np.ndarray, sample_rate: int, pitch_shift_cents: float) -> np.ndarray:
    """Pitch-shift (duration kept) and resample to :data:`SAMPLE_RATE` with sox, raw int16 through pipes."""
    raw = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-L"]
    effects = []
    if pitch_shift_cents:
        effects += ["pitch", f"{pitch_shift_cents:.0f}"]
    if sample_rate != SAMPLE_RATE:
        effects += ["rate", "-h", str(SAMPLE_RATE)]
    # -R: repeatable (fixed seeds), -D: no dither, -G: guard against clipping.
    command = ["sox", "-R", "-D", "-G", "-V1"]
    command += [*raw, "-r", str(sample_rate), "-", *raw, "-r", str(SAMPLE_RATE), "-", *effects]
    result = subprocess.run(command, input=audio.astype("<i2").tobytes(), capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.int16)


def _log_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log energy in 10 ms windows every 1 ms."""
    window = sample_rate // 100
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    energy = (power[window:] - power[:-window])[:: sample_rate // 1000] / window
    return np.log(energy + 1.0)


def _lag_ms(shifted: np.ndarray, reference: np.ndarray, reference_rate: int, max_lag_ms: int = 40) -> int:
    """How many ms ``shifted`` (16 kHz) runs ahead of ``reference``, from log-envelope cross-correlation."""
    a = _log_envelope(reference, reference_rate)
    b = _log_envelope(shifted, SAMPLE_RATE)
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    lags = range(-max_lag_ms, max_lag_ms + 1)
    scores = [np.dot(a[max(0, lag) : n + min(0, lag)], b[max(0, -lag) : n - max(0, lag)]) for lag in lags]
    return lags[int(np.argmax(scores))]


def _delay(audio: np.ndarray, samples: int) -> np.ndarray:
    """Move ``audio`` later by ``samples`` (earlier if negative), keeping its length; the ends are silence."""
    if samples > 0:
        return np.concatenate([np.zeros(samples, dtype=audio.dtype), audio[:-samples]])
    if samples < 0:
        return np.concatenate([audio[-samples:], np.zeros(-samples, dtype=audio.dtype)])
    return audio


def render_audio(output: EngineOutput, style: SpeakingStyle) -> np.ndarray:
    """The engine's audio at 16 kHz with the style's pitch shift, time-aligned with the engine's timings.

    sox's pitch effect moves the signal by roughly 5-20 ms (earlier when shifting up, later when shifting
    down); the shift is measured per utterance and undone.
    """
    if not style.pitch_shift_cents and output.sample_rate == SAMPLE_RATE:
        return output.audio
    processed = _sox(output.audio, output.sample_rate, style.pitch_shift_cents)
    if style.pitch_shift_cents:
        lag = _lag_ms(processed, output.audio, output.sample_rate)
        processed = _delay(processed, lag * SAMPLE_RATE // 1000)
    return processed


def add_noise_floor(audio: np.ndarray, seed: int) -> np.ndarray:
    """``audio`` plus Gaussian noise at :data:`NOISE_FLOOR_DBFS`, drawn from ``seed``."""
    noise_std = 32768.0 * 10.0 ** (NOISE_FLOOR_DBFS / 20.0)
    noisy = audio.astype(np.float64) + np.random.default_rng(seed).normal(0.0, noise_std, size=len(audio))
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)

