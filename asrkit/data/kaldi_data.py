"""Kaldi data directories <-> asrkit's lhotse manifests, through lhotse's own ``lhotse.kaldi`` code.

Commands: ``asrkit kaldi-export`` and ``asrkit kaldi-import`` (asrkit/cli.py; docs/kaldi_data.md).

Export writes wav.scp, text, utt2spk, spk2utt, spk2gender, reco2dur, utt2dur (and utt2gender, utt2lang when
every utterance has one); ``segments`` only when the utterances are not whole recordings (lhotse's
``export_to_kaldi`` always writes it: we remove it when every utterance is exactly its recording, as in Kaldi's
egs/timit). Import reads wav.scp, segments, text, utt2spk, spk2gender, utt2lang and (with ``use_reco2dur``)
reco2dur; it checks the directory first and names the file and line of each problem, because lhotse either
raises a bare KeyError/AssertionError or drops what it cannot read with only a warning.
"""

import io
import logging
import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import soundfile
from lhotse import RecordingSet, SupervisionSet, validate_recordings_and_supervisions
from lhotse.audio import AudioSource
from lhotse.kaldi import export_to_kaldi, get_duration, load_kaldi_data_dir, save_kaldi_text_mapping
from lhotse.utils import fastcopy

from asrkit.data.corpus import audio_problems, raise_problems, special_file_kind
from asrkit.data.manifests import MANIFEST_KINDS, manifest_path
from asrkit.io import PathLike, atomic_output
from asrkit.data.phones import CORPUS_PHONES, fold

#: What the text file of an export holds: the supervisions' text, or their phone alignment (TIMIT).
TEXT_SOURCES = ("text", "phones")
#: Seconds by which times may differ and still be the same (lhotse floors durations read from audio to 1 ms).
TIME_TOLERANCE = 1e-3
#: Seconds a wav.scp pipe may run before the import gives up on it (``--pipe-timeout``): Kaldi and lhotse wait
#: forever on one that never ends.
PIPE_TIMEOUT = 120.0
#: A wav.scp pipe's output is checked (rate, channels, samples) only up to this size, about 2.3 hours of 16-bit
#: 16 kHz audio; a longer one is only run to its end (or a pipe that writes forever would fill the memory).
MAX_CHECKED_PIPE_BYTES = 256 << 20


class KaldiDataError(ValueError):
    """A Kaldi data directory or a manifest that cannot be converted; the message names the file and line."""


# ---------------------------------------------------------------------------------------------------- export


def export_kaldi_data_dir(recordings_manifest: PathLike, supervisions_manifest: PathLike, out_dir: PathLike,
                          text_from: str = "text", phone_set: int = 48, prefix_speaker: bool = False) -> Dict[str, int]:
    """Write the Kaldi data directory ``out_dir`` (atomically: all of it or nothing) for one split's manifests.

    ``text_from="phones"`` writes each utterance's phone alignment (TIMIT's 61 labels, folded to ``phone_set``:
    61 as they are, 60 without q, 48 as in Kaldi's egs/timit, or 39) as its text instead of the words.
    ``prefix_speaker`` puts the speaker in front of each utterance id (lhotse's ``prefix_spk_id``), which Kaldi's
    scripts need when sorting the utterance ids does not also group them by speaker. Returns the counts
    (utterances, speakers, recordings, segments: 1 if a segments file was written).
    """
    recordings = RecordingSet.from_file(recordings_manifest)
    supervisions = SupervisionSet.from_file(supervisions_manifest)
    if text_from not in TEXT_SOURCES:
        raise ValueError(f"text_from must be one of {TEXT_SOURCES}, not {text_from!r}")
    try:
        validate_recordings_and_supervisions(recordings, supervisions)
    except AssertionError as e:
        raise KaldiDataError(f"{recordings_manifest}, {supervisions_manifest}: inconsistent manifests ({e})") from None
    for recording in recordings:
        if recording.num_channels != 1 or len(recording.sources) != 1:
            raise KaldiDataError(f"{recordings_manifest}: recording {recording.id} has {recording.num_channels} "
                                 f"channels in {len(recording.sources)} source(s); only mono single-source "
                                 f"recordings are exported")
    supervisions = SupervisionSet.from_segments(
        _with_kaldi_text(s, text_from, phone_set, supervisions_manifest) for s in supervisions)
    recordings = RecordingSet.from_recordings(_kaldi_readable(r) for r in recordings)
    need_segments = prefix_speaker or not _utterances_are_whole_recordings(recordings, supervisions)
    if not prefix_speaker:
        _warn_if_kaldi_cannot_sort(supervisions, supervisions_manifest)

    out_dir = Path(out_dir)
    with atomic_output(out_dir) as tmp:
        export_to_kaldi(recordings, supervisions, tmp, prefix_spk_id=prefix_speaker)
        if not need_segments:
            (tmp / "segments").unlink()
        speaker_of = {line.split()[0]: line.split()[1] for line in (tmp / "utt2spk").read_text().splitlines()}
        utterances_of = defaultdict(list)
        for utterance, speaker in speaker_of.items():
            utterances_of[speaker].append(utterance)
        # Python sorts strings by code point, which is the C locale's byte order (what fix_data_dir.sh sorts by)
        save_kaldi_text_mapping({spk: " ".join(sorted(utts)) for spk, utts in utterances_of.items()},
                                tmp / "spk2utt")
        genders = _kaldi_genders(supervisions)
        if genders:
            save_kaldi_text_mapping(genders, tmp / "spk2gender")
    counts = {"utterances": len(supervisions), "speakers": len(utterances_of), "recordings": len(recordings),
              "segments": int(need_segments)}
    logging.info(f"{supervisions_manifest}: {counts['utterances']} utterances, {counts['speakers']} speakers, "
                 f"{counts['recordings']} recordings ({'with' if need_segments else 'no'} segments), text from "
                 f"{text_from if text_from == 'text' else f'{phone_set} phones'} -> {out_dir}")
    return counts


def _with_kaldi_text(supervision, text_from: str, phone_set: int, manifest: PathLike):
    """The supervision with the text Kaldi's ``text`` file will hold (one line: no newlines)."""
    if supervision.speaker is None:
        raise KaldiDataError(f"{manifest}: supervision {supervision.id} has no speaker (Kaldi's utt2spk needs one)")
    if text_from == "phones":
        if not supervision.alignment or "phone" not in supervision.alignment:
            raise KaldiDataError(f"{manifest}: supervision {supervision.id} has no phone alignment "
                                 f"(text_from='phones' needs TIMIT-style supervisions)")
        phones = fold([item.symbol for item in supervision.alignment["phone"]], CORPUS_PHONES, phone_set)
        return fastcopy(supervision, text=" ".join(phones))
    if supervision.text is None:
        raise KaldiDataError(f"{manifest}: supervision {supervision.id} has no text")
    return fastcopy(supervision, text=" ".join(supervision.text.split()))


def _kaldi_readable(recording):
    """The recording with a source Kaldi can read: a RIFF WAV file as it is, any other file through sox.

    lhotse decides by the file name and pipes other formats through ffmpeg; TIMIT's NIST SPHERE files are
    often called ``.wav``, and ffmpeg is not one of our dependencies, while sox is Kaldi's usual converter.
    """
    source = recording.sources[0]
    if source.type != "file":
        return recording
    try:
        audio_format = soundfile.info(source.source).format
    except Exception as e:  # libsndfile's message says what is wrong
        raise KaldiDataError(f"{source.source}: unreadable audio of recording {recording.id} ({e})") from None
    if audio_format == "WAV" and " " not in source.source:  # a wav.scp path cannot hold spaces
        return recording
    sox_type = "-t sph " if audio_format == "NIST" else ""  # sox goes by the name, and TIMIT's are .wav
    quoted = "'" + source.source.replace("'", "'\\''") + "'"
    command = f"sox {sox_type}{quoted} -t wav -"
    return fastcopy(recording, sources=[AudioSource(type="command", channels=source.channels, source=command)])


def _utterances_are_whole_recordings(recordings: RecordingSet, supervisions: SupervisionSet) -> bool:
    """Whether every recording has one supervision with its id, covering all of it (then Kaldi needs no segments)."""
    by_recording = defaultdict(list)
    for s in supervisions:
        by_recording[s.recording_id].append(s)
    for recording in recordings:
        sups = by_recording.get(recording.id, [])
        if len(sups) != 1 or sups[0].id != recording.id or abs(sups[0].start) > TIME_TOLERANCE \
                or abs(sups[0].duration - recording.duration) > TIME_TOLERANCE:
            return False
    return True


def _warn_if_kaldi_cannot_sort(supervisions: SupervisionSet, manifest: PathLike) -> None:
    """Kaldi's validate_data_dir.sh wants utt2spk in the same order sorted by utterance and by speaker."""
    by_utterance = sorted((s.id, s.speaker) for s in supervisions)
    if by_utterance != sorted(by_utterance, key=lambda pair: (pair[1], pair[0])):
        logging.warning(f"{manifest}: utterance ids do not start with their speaker ids; Kaldi's "
                        f"utils/validate_data_dir.sh will refuse the directory (use --prefix-speaker)")


def _kaldi_genders(supervisions: SupervisionSet) -> Dict[str, str]:
    """spk2gender (``m``/``f``) when every speaker has one gender; lhotse says ``male``/``female``."""
    genders = defaultdict(set)
    for s in supervisions:
        genders[s.speaker].add((s.gender or "?")[:1].lower())
    if all(len(g) == 1 and next(iter(g)) in "mf" for g in genders.values()):
        return {speaker: next(iter(g)) for speaker, g in genders.items()}
    return {}


# ---------------------------------------------------------------------------------------------------- import


def import_kaldi_data_dir(data_dir: PathLike, sampling_rate: int, output_dir: PathLike, prefix: str, split: str,
                          use_reco2dur: bool = False, num_jobs: int = 1,
                          pipe_timeout: float = PIPE_TIMEOUT) -> Tuple[Path, Path]:
    """Read a Kaldi data directory and write ``<output_dir>/<prefix>_{recordings,supervisions}_<split>.jsonl.gz``.

    The directory is checked first (every file's lines, the utterances of text/utt2spk/segments against
    wav.scp, every recording's audio); any problem stops the import with the file and line. Durations are
    read from the audio (``use_reco2dur`` trusts reco2dur instead: faster, but unreadable audio is then only
    found when features are computed). Before lhotse reads the durations, every wav.scp entry's audio is checked
    as a corpus file is (:func:`asrkit.data.corpus.audio_problems`: ``sampling_rate``, mono, not empty, no NaN or
    infinite sample): files always, pipes unless ``use_reco2dur``, each run once to stop with its line if it does
    not end within ``pipe_timeout`` seconds (lhotse would wait forever). feats.scp is not read. Returns the two
    manifest paths.
    """
    data_dir = Path(data_dir)
    tables = check_kaldi_data_dir(data_dir, use_reco2dur)
    _check_wav_scp_audio(data_dir / "wav.scp", tables["wav.scp"], sampling_rate, pipe_timeout, num_jobs,
                         run_pipes=not use_reco2dur)
    if (data_dir / "feats.scp").is_file():
        logging.info(f"{data_dir}/feats.scp: not used (asrkit computes its own features from the audio)")
    try:
        recordings, supervisions, _ = load_kaldi_data_dir(data_dir, sampling_rate, use_reco2dur=use_reco2dur,
                                                          num_jobs=num_jobs)
    except Exception:  # lhotse reads audio in worker processes and gives no line: find the bad one(s)
        _raise_unreadable_audio(data_dir, tables["wav.scp"], num_jobs)
        raise
    if len(recordings) < len(tables["wav.scp"]):  # lhotse dropped unreadable pipes with a warning
        _raise_unreadable_audio(data_dir, tables["wav.scp"], num_jobs)
    if "segments" in tables:
        _check_segments_inside_recordings(data_dir / "segments", tables["segments"], supervisions, recordings)
    try:
        validate_recordings_and_supervisions(recordings, supervisions)
    except AssertionError as e:  # lhotse's own checks, after ours: should not happen, but say where if it does
        raise KaldiDataError(f"{data_dir}: {e}") from None
    paths = []
    for kind, manifest in zip(MANIFEST_KINDS, (recordings, supervisions)):
        path = manifest_path(output_dir, prefix, kind, split)
        with atomic_output(path) as tmp:
            manifest.to_file(tmp)
        paths.append(path)
    logging.info(f"{data_dir}: {len(supervisions)} utterances, {len({s.speaker for s in supervisions})} speakers, "
                 f"{len(recordings)} recordings ({sum(r.duration for r in recordings) / 3600:.2f} h) "
                 f"-> {paths[0]}, {paths[1]}")
    return paths[0], paths[1]


Table = Dict[str, Tuple[str, int]]  # key -> (value, line number)


def read_kaldi_table(path: Path, min_fields: int = 2) -> Table:
    """A Kaldi text table (``key value...`` lines) as key -> (value, line); malformed lines (blank ones too:
    lhotse fails on them) and repeated keys raise :class:`KaldiDataError` naming ``path:line``.
    ``min_fields=1`` allows a key alone (an empty text)."""
    table: Table = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        fields = line.split(maxsplit=1)
        if len(fields) < min_fields or not fields:
            raise KaldiDataError(f"{path}:{number}: expected '<key> <value>', got {line!r}")
        if fields[0] in table:
            raise KaldiDataError(f"{path}:{number}: {fields[0]} repeated (first on line {table[fields[0]][1]})")
        table[fields[0]] = (fields[1].strip() if len(fields) > 1 else "", number)
    return table


def check_kaldi_data_dir(data_dir: Path, use_reco2dur: bool = False) -> Dict[str, Table]:
    """Check the files lhotse will read (all but the audio); return them as tables by file name."""
    if not data_dir.is_dir():
        raise KaldiDataError(f"{data_dir}: no such directory")
    wav_scp = data_dir / "wav.scp"
    if not wav_scp.is_file():
        found = ", ".join(sorted(p.name for p in data_dir.iterdir())) or "nothing"
        raise KaldiDataError(f"{wav_scp}: missing (a Kaldi data directory needs wav.scp; found {found})")
    tables = {"wav.scp": read_kaldi_table(wav_scp)}
    if not tables["wav.scp"]:
        raise KaldiDataError(f"{wav_scp}: no recordings")
    if use_reco2dur:
        _check_reco2dur(data_dir / "reco2dur", tables["wav.scp"])
    for name in ("text", "utt2spk"):
        if not (data_dir / name).is_file():
            raise KaldiDataError(f"{data_dir / name}: missing (asrkit needs the {name} of every utterance)")
    segments = data_dir / "segments"
    if segments.is_file():
        tables["segments"] = read_kaldi_table(segments)
        _check_segments(segments, tables["segments"], tables["wav.scp"])
        utterances, where = tables["segments"], segments
    else:
        utterances, where = tables["wav.scp"], wav_scp  # without segments each recording is one utterance
    if not utterances:
        raise KaldiDataError(f"{where}: no utterances")
    for name in ("text", "utt2spk", "utt2lang"):  # utt2lang is optional; the others were checked above
        if (data_dir / name).is_file():
            # lhotse reads an empty text (a key alone) only with a segments file
            min_fields = 1 if name == "text" and "segments" in tables else 2
            tables[name] = read_kaldi_table(data_dir / name, min_fields)
            _check_same_utterances(data_dir / name, tables[name], utterances, where)
    speakers = {speaker for speaker, _ in tables["utt2spk"].values()}
    if (data_dir / "spk2gender").is_file():
        tables["spk2gender"] = read_kaldi_table(data_dir / "spk2gender")
        missing = sorted(speakers - tables["spk2gender"].keys())
        if missing:
            raise KaldiDataError(f"{data_dir / 'spk2gender'}: no line for speaker {missing[0]} (of utt2spk)")
    if (data_dir / "spk2utt").is_file():
        spk2utt = {spk: sorted(utts.split()) for spk, (utts, _) in read_kaldi_table(data_dir / "spk2utt").items()}
        from_utt2spk = defaultdict(list)
        for utterance, (speaker, _) in tables["utt2spk"].items():
            from_utt2spk[speaker].append(utterance)
        for speaker in sorted(spk2utt.keys() | from_utt2spk.keys()):
            if spk2utt.get(speaker) != sorted(from_utt2spk.get(speaker, [])):
                raise KaldiDataError(f"{data_dir / 'spk2utt'}: speaker {speaker} does not have the utterances "
                                     f"utt2spk gives it (run Kaldi's utils/fix_data_dir.sh)")
    return tables


def _check_reco2dur(path: Path, recordings: Table) -> None:
    if not path.is_file():
        raise KaldiDataError(f"{path}: missing (--use-reco2dur needs it)")
    durations = read_kaldi_table(path)
    for recording, (value, number) in durations.items():
        if recording not in recordings:
            raise KaldiDataError(f"{path}:{number}: recording {recording} is not in wav.scp")
        try:
            if float(value) <= 0:
                raise ValueError
        except ValueError:
            raise KaldiDataError(f"{path}:{number}: expected a positive duration in seconds, got {value!r}") from None
    missing = [recording for recording in recordings if recording not in durations]
    if missing:
        raise KaldiDataError(f"{path}: no line for recording {missing[0]} (wav.scp:{recordings[missing[0]][1]})")


def _check_segments(path: Path, segments: Table, recordings: Table) -> None:
    for segment, (value, number) in segments.items():
        fields = value.split()
        try:
            start, end = float(fields[1]), float(fields[2])
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise KaldiDataError(f"{path}:{number}: expected '<utterance> <recording> <start> <end>', "
                                 f"got '{segment} {value}'") from None
        if fields[0] not in recordings:
            raise KaldiDataError(f"{path}:{number}: recording {fields[0]} is not in wav.scp")
        if start < 0 or (end != -1 and end <= start):
            raise KaldiDataError(f"{path}:{number}: segment {segment} from {start} to {end} s is empty or negative")


def _check_segments_inside_recordings(path: Path, segments: Table, supervisions: SupervisionSet,
                                      recordings: RecordingSet) -> None:
    duration = {r.id: r.duration for r in recordings}
    for s in supervisions:
        if s.end > duration[s.recording_id] + TIME_TOLERANCE:
            raise KaldiDataError(f"{path}:{segments[s.id][1]}: segment {s.id} ends at {s.end} s, past the end of "
                                 f"recording {s.recording_id} ({duration[s.recording_id]} s)")


def _check_same_utterances(path: Path, table: Table, utterances: Table, where: Path) -> None:
    """Every line of ``path`` is an utterance of ``where`` (segments, or wav.scp), and every utterance has one."""
    for key, (_, number) in table.items():
        if key not in utterances:
            raise KaldiDataError(f"{path}:{number}: utterance {key} is not in {where.name}")
    missing = [key for key in utterances if key not in table]
    if missing:
        raise KaldiDataError(f"{path}: no line for utterance {missing[0]} ({where}:{utterances[missing[0]][1]})"
                             + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))


def _audio_problem(source: str) -> Optional[str]:
    """Why lhotse cannot read the duration of a wav.scp entry (a file or a ``command |``); None if it can."""
    try:
        return None if get_duration(source) is not None else "the command gives no readable mono audio"
    except Exception as e:
        lhotse_reason = " ".join(str(e).split())
    try:  # libsndfile says in one line what is wrong; lhotse lists every backend it tried
        soundfile.info(source)
    except Exception as e:
        return str(e)
    return lhotse_reason


def _raise_unreadable_audio(data_dir: Path, wav_scp: Table, num_jobs: int) -> None:
    """Raise :class:`KaldiDataError` listing the wav.scp lines whose audio cannot be read, if any."""
    entries = list(wav_scp.items())
    with ProcessPoolExecutor(num_jobs) as pool:
        problems = list(pool.map(_audio_problem, [value for _, (value, _) in entries]))
    bad = [f"{data_dir / 'wav.scp'}:{number}: unreadable audio {value!r} ({problem})"
           for (_, (value, number)), problem in zip(entries, problems) if problem]
    raise_problems(bad, KaldiDataError, "recording(s) cannot be read")


def _pipe_output(command: str, timeout: float) -> Tuple[bool, Optional[bytes]]:
    """Run a wav.scp ``command |`` (through /bin/sh, as lhotse does): (whether it ended within ``timeout``
    seconds, its output, or None beyond :data:`MAX_CHECKED_PIPE_BYTES`). One that has not ended is killed with
    every process it started."""
    process = subprocess.Popen(command.rstrip()[:-1], shell=True, stdout=subprocess.PIPE, start_new_session=True)
    chunks: List[bytes] = []
    size = 0

    def read() -> None:
        nonlocal size
        while chunk := process.stdout.read(1 << 20):
            size += len(chunk)
            if size <= MAX_CHECKED_PIPE_BYTES:
                chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    reader.join(max(0.0, deadline - time.monotonic()))  # its output ends when every process writing it has
    if reader.is_alive():
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(1.0)  # a process of its own session could still hold the pipe: then the daemon thread waits
        return False, None
    process.stdout.close()
    return True, b"".join(chunks) if size <= MAX_CHECKED_PIPE_BYTES else None


def _entry_audio_problems(value: str, sampling_rate: int, timeout: float, run_pipes: bool) -> Optional[List[str]]:
    """Why a wav.scp entry (a file or a ``command |``) gives no usable recording; None for a pipe that did not
    end within ``timeout`` seconds. Unreadable audio is left to lhotse's reader, whose reason is reported then."""
    if value.endswith("|"):
        if not run_pipes:
            return []
        ended, output = _pipe_output(value, timeout)
        if not ended:
            return None
        if output is None:
            logging.info(f"the command {value!r} gives more than {MAX_CHECKED_PIPE_BYTES >> 20} MiB: its audio is "
                         f"not checked")
            return []
        audio = io.BytesIO(output)
    else:
        kind = special_file_kind(Path(value))
        if kind:  # a FIFO would block the reader forever
            return [f"{kind}, not an audio file"]
        audio = Path(value)
    return [reason + (" (--sampling-rate)" if reason.startswith("sample rate") else "")
            for reason in audio_problems(audio, sampling_rate) if not reason.startswith("unreadable")]


def _check_wav_scp_audio(wav_scp_path: Path, wav_scp: Table, sampling_rate: int, timeout: float, num_jobs: int,
                         run_pipes: bool) -> None:
    """Raise :class:`KaldiDataError` naming the first wav.scp pipe that does not end within ``timeout`` seconds,
    or every line whose audio is not what the manifests will claim (lhotse takes the rate on trust, and reads NaN
    samples that the feature stage then fails on, naming no line)."""
    entries = list(wav_scp.values())
    problems = []
    with ThreadPoolExecutor(num_jobs) as pool:
        found = [pool.submit(_entry_audio_problems, value, sampling_rate, timeout, run_pipes) for value, _ in entries]
        for (value, number), result in zip(entries, found):
            reasons = result.result()
            if reasons is None:
                pool.shutdown(cancel_futures=True)  # the ones already running end within the timeout
                raise KaldiDataError(f"{wav_scp_path}:{number}: the command {value!r} did not end within "
                                     f"{timeout:g} s (a pipe that never ends?); if it is only slow, raise "
                                     f"--pipe-timeout")
            problems += [f"{wav_scp_path}:{number}: {value!r}: {reason}" for reason in reasons]
    raise_problems(problems, KaldiDataError, "recording(s) with unusable audio")
