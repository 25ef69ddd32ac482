"""Audio-domain augmentation of the training set: speed-perturbed, reverberated and noisy copies of its cuts.

The copies are made at the feature stage (:func:`asrkit.data.features.compute_features`, train split only,
``augmentation`` config section) and stored like any cut's features. Each is a new cut with its own ID (the
original's plus a suffix, e.g. ``_sp0.9``, ``_rvb1``, ``_noise1``), its own supervisions (the same transcript;
lhotse rescales a speed-perturbed copy's times) and the suffix as ``custom["augmentation"]``, by which the
normalisation statistics leave the copies out (:func:`is_augmented`).

Every random choice of a copy (room, noise talkers, SNR) comes from a generator seeded by the config's seed and
the copy's ID, never from a global random state: a copy is the same whatever the order, the number of feature
processes or the shards that compute it. A babble copy reads other training utterances, chosen from the whole
train split (not the shard's part of it).

Reverberation is asrkit's own synthetic room impulse response (:class:`SyntheticReverb`), not lhotse's
``reverb_rir()``: lhotse's generator needs torchaudio and draws part of each response from torch's global random
state, so that a response would depend on what the process computed before. Noise is babble made of the
training set's own speech (lhotse's ``mix``): it needs no noise corpus, and speech-shaped noise is the hardest
to tell from the speech to recognise, which a model trained on a few clean synthetic voices most lacks.
"""

import hashlib
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from lhotse import CutSet
from lhotse.augmentation import AudioTransform
from lhotse.cut import Cut, MonoCut
from lhotse.utils import fastcopy

from asrkit.config import AugmentationConfig

#: the custom field of a cut that names its augmentation (the suffix of its ID); the original cuts have none
AUGMENTATION_FIELD = "augmentation"
#: the simultaneous talkers of babble noise: few enough that words stand out, as in a room of people talking
BABBLE_TALKERS = 3
#: reverberation time (s) of the synthetic rooms, uniform in this range (small office to large hall)
REVERB_T60 = (0.2, 0.8)
#: direct-to-reverberant energy ratio (dB) of the synthetic rooms, uniform in this range
REVERB_DRR_DB = (0.0, 12.0)


def copy_rng(seed: int, copy_id: str) -> np.random.Generator:
    """The random generator of one augmented copy: from the config's seed and the copy's ID alone."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}/{copy_id}".encode()).digest()[:8], "little"))


@dataclass
class SyntheticReverb(AudioTransform):
    """Reverberation by a synthetic room impulse response, drawn from ``seed`` alone: a direct path, then
    Gaussian noise decaying by 60 dB in ``t60`` seconds (Polack's statistical model of late reverberation),
    scaled so that the direct path has ``drr_db`` dB more energy than the tail. As lhotse's reverberation does,
    the output keeps the input's length (the direct path is not delayed) and power."""

    seed: int
    t60: float
    drr_db: float

    def impulse_response(self, sampling_rate: int) -> np.ndarray:
        tail_times = np.arange(1, max(2, round(self.t60 * sampling_rate))) / sampling_rate
        tail = np.random.default_rng(self.seed).standard_normal(len(tail_times)) \
            * 10.0 ** (-3.0 * tail_times / self.t60)  # amplitude -60 dB at t60
        direct = math.sqrt(float(np.sum(tail ** 2)) * 10.0 ** (self.drr_db / 10))
        return np.concatenate([[direct], tail])

    def __call__(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        """samples: (channels, num_samples) -> the same shape, reverberated."""
        response = self.impulse_response(sampling_rate)
        num_samples = samples.shape[-1]
        size = 1 << (num_samples + len(response) - 2).bit_length()  # a power of 2 >= the full convolution
        reverberated = np.fft.irfft(np.fft.rfft(samples.astype(np.float64), size)
                                    * np.fft.rfft(response, size), size)[..., :num_samples]
        power_before = np.mean(samples.astype(np.float64) ** 2, axis=-1, keepdims=True)
        power_after = np.mean(reverberated ** 2, axis=-1, keepdims=True)
        scale = np.sqrt(np.divide(power_before, power_after, out=np.ones_like(power_after), where=power_after > 0))
        return (reverberated * scale).astype(samples.dtype)

    def reverse_timestamps(self, offset: float, duration: Optional[float], sampling_rate: Optional[int]
                           ) -> Tuple[float, Optional[float]]:
        return offset, duration  # the output's times are the input's


def is_augmented(cut: Cut) -> bool:
    """Whether a cut is an augmented copy (rather than an utterance of the corpus)."""
    return AUGMENTATION_FIELD in (cut.custom or {})


def _renamed(cut: MonoCut, suffix: str, recording_id: str) -> MonoCut:
    """A copy of ``cut`` and its supervisions with IDs ending in ``_<suffix>``, tagged as augmented."""
    return fastcopy(cut, id=f"{cut.id}_{suffix}",
                    supervisions=[fastcopy(s, id=f"{s.id}_{suffix}", recording_id=recording_id)
                                  for s in cut.supervisions],
                    custom={**(cut.custom or {}), AUGMENTATION_FIELD: suffix})


def speed_copy(cut: MonoCut, factor: float) -> MonoCut:
    """``cut`` at ``factor`` times the speed (lhotse: resampled, duration and supervisions rescaled)."""
    perturbed = cut.perturb_speed(factor)  # ID <cut>_sp<factor>
    return fastcopy(perturbed, custom={**(cut.custom or {}), AUGMENTATION_FIELD: f"sp{factor}"})


def reverb_copy(cut: MonoCut, index: int, seed: int) -> MonoCut:
    """The ``index``-th reverberated copy of ``cut``, in a room drawn from the seed and the copy's ID."""
    suffix = f"rvb{index}"
    rng = copy_rng(seed, f"{cut.id}_{suffix}")
    reverb = SyntheticReverb(seed=int(rng.integers(2 ** 63)), t60=float(rng.uniform(*REVERB_T60)),
                             drr_db=float(rng.uniform(*REVERB_DRR_DB)))
    recording = fastcopy(cut.recording, id=f"{cut.recording.id}_{suffix}",
                         transforms=[*(cut.recording.transforms or []), reverb])
    return fastcopy(_renamed(cut, suffix, recording.id), recording=recording)


def noise_copy(cut: MonoCut, index: int, talkers: Sequence[MonoCut], snr_range: Tuple[float, float],
               seed: int) -> Cut:
    """The ``index``-th copy of ``cut`` with babble: :data:`BABBLE_TALKERS` chains of utterances of
    ``talkers`` (not ``cut`` itself), each chain covering the whole cut, together at an SNR drawn from
    ``snr_range``.

    Each utterance of a chain gets 1/BABBLE_TALKERS of the noise power (lhotse scales a mixed-in cut by its
    own energy against the original's), so independent talkers sum to about the SNR drawn. The chains take
    their utterances in turn from a shuffle of ``talkers``: no utterance is heard twice (twice at once would
    double its amplitude) unless the chains need more than there are.
    """
    suffix = f"noise{index}"
    rng = copy_rng(seed, f"{cut.id}_{suffix}")
    snr = float(rng.uniform(*snr_range))
    talker_snr = snr + 10 * math.log10(BABBLE_TALKERS)
    others = [t for t in talkers if t.id != cut.id]
    if not others:
        raise ValueError(f"babble noise for {cut.id} needs other training utterances; the train split has none")
    shuffled = [others[i] for i in rng.permutation(len(others))]
    drawn = 0
    mixed: Cut = _renamed(cut, suffix, cut.recording_id)
    for _ in range(BABBLE_TALKERS):
        done = 0  # samples of the cut that this talker covers so far
        while done < cut.num_samples:
            other = shuffled[drawn % len(shuffled)]
            drawn += 1
            length = min(other.num_samples, cut.num_samples - done)
            piece = other.drop_supervisions().truncate(duration=length / cut.sampling_rate, preserve_id=True)
            mixed = mixed.mix(piece, offset_other_by=done / cut.sampling_rate, snr=talker_snr, preserve_id="left")
            done += length
    return mixed


def augment(cuts: CutSet, augmentation: AugmentationConfig, seed: int) -> CutSet:
    """``cuts`` (a whole train split) and their augmented copies: for each cut, one per speed factor, then
    ``reverb`` reverberated ones, then ``noise`` noisy ones, each made from the original."""
    originals: List[MonoCut] = sorted(cuts, key=lambda c: c.id)
    augmented: List[Cut] = []
    for cut in originals:
        augmented.append(cut)
        augmented.extend(speed_copy(cut, factor) for factor in augmentation.speed_perturb)
        augmented.extend(reverb_copy(cut, i, seed) for i in range(1, augmentation.reverb + 1))
        augmented.extend(noise_copy(cut, i, originals, augmentation.noise_snr, seed)
                         for i in range(1, augmentation.noise + 1))
    return CutSet.from_cuts(augmented)


def features_only(cut: Cut) -> Cut:
    """A copy as stored once its features are: without its audio's description (its transforms, its mix),
    which the features replace, so that its manifest reads without asrkit (as lhotse stores a mix's features).
    An original cut is returned as it is."""
    return fastcopy(cut, recording=None) if is_augmented(cut) else cut
