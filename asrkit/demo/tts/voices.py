"""The TTS voices (which engine runs each, which Debian package provides it) and what a request asks of one."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

FLITE = "flite"
FESTIVAL_DIPHONE = "festival_diphone"
FESTIVAL_HTS = "festival_hts"


@dataclass(frozen=True)
class Voice:
    """A TTS voice, the engine that runs it and the Debian package that provides it."""

    name: str
    engine: str
    sex: str  #: "M" or "F"
    package: str
    follows_f0_target: bool
    #: Seconds by which the voice's audio comes later than the phone boundaries it reports; added to them.
    #: Measured on speech onsets after the leading pause and on vowel-fricative transitions: festival's
    #: voices run 7-15 ms behind their segment times, flite's 0-5 ms.
    audio_delay: float = 0.0


VOICES: Dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("kal16", FLITE, "M", "libflite1", follows_f0_target=True),
        Voice("awb", FLITE, "M", "libflite1", follows_f0_target=True),
        Voice("rms", FLITE, "M", "libflite1", follows_f0_target=False),
        Voice("slt", FLITE, "F", "libflite1", follows_f0_target=True),
        Voice("kal_diphone", FESTIVAL_DIPHONE, "M", "festvox-kallpc16k", follows_f0_target=True, audio_delay=0.010),
        Voice("ked_diphone", FESTIVAL_DIPHONE, "M", "festvox-kdlpc16k", follows_f0_target=True, audio_delay=0.010),
        Voice(
            "cmu_us_slt_arctic_hts",
            FESTIVAL_HTS,
            "F",
            "festvox-us-slt-hts",
            follows_f0_target=False,
            audio_delay=0.010,
        ),
    )
}

#: Where festival's voices are installed, under :data:`FESTIVAL_VOICES_ROOT`.
FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "english/kal_diphone",
    "ked_diphone": "english/ked_diphone",
    "cmu_us_slt_arctic_hts": "us/cmu_us_slt_arctic_hts",
}
FESTIVAL_VOICES_ROOT = Path("/usr/share/festival/voices")


@dataclass(frozen=True)
class SpeakingStyle:
    """How a speaker sounds: a base voice and what is changed about it."""

    voice: str
    #: Multiplies every phone duration: above 1 is slower speech.
    duration_scale: float = 1.0
    #: Mean F0 target (Hz) given to the voice's intonation model; None keeps the voice's own.
    #: Voices with ``follows_f0_target=False`` ignore it.
    f0_mean: Optional[float] = None
    #: Pitch (and formant) shift of the finished audio in cents, duration unchanged.
    pitch_shift_cents: float = 0.0


@dataclass(frozen=True)
class SynthesisRequest:
    """One sentence to synthesise; ``seed`` fixes every random choice (engine excitation, noise floor)."""

    text: str
    style: SpeakingStyle
    seed: int = 0


class MissingDependencyError(RuntimeError):
    """A binary, library or voice is not installed; the message names the Debian package."""
