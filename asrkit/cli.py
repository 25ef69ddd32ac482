"""asrkit: use a trained model (the model.pt of a recipe's experiment directory, e.g. exp/ctc), or move a
corpus between asrkit's manifests and Kaldi data directories.

  asrkit transcribe --model exp/ctc a.wav b.flac      phones (or words) with the time each was emitted
  asrkit export --model exp/ctc --output ctc.ts       TorchScript model
  asrkit sensitivity --model exp/ctc --audio a.wav --token iy --output iy.png
                                                      input-sensitivity figure (Graves et al. 2013, Fig. 4)
  asrkit kaldi-export --recordings R --supervisions S --out-dir data/kaldi/train
                                                      a split's manifests -> Kaldi data directory
  asrkit kaldi-import --data-dir data/kaldi/train --split train
                                                      Kaldi data directory -> data/manifests/timit_*_train.jsonl.gz
  asrkit new-recipe NAME [--dir recipes]              a new recipe from the template (docs/new_recipe.md)

Run ``asrkit <command> --help`` for each command's options and output.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from asrkit.decoding.decode import add_search_flags
from asrkit.device import DEVICE_CHOICES
from asrkit.inference.export import export_model
from asrkit.data.kaldi_data import PIPE_TIMEOUT, TEXT_SOURCES, export_kaldi_data_dir, import_kaldi_data_dir
from asrkit.data.phones import PHONE_SETS
from asrkit.workflow.new_recipe import create_recipe
from asrkit.inference.sensitivity import plot_sensitivity
from asrkit.inference.transcribe import Transcriber

TRANSCRIBE_HELP = """\
Prints one line per file, Kaldi-style (the key, then the hypothesis), the two fields separated by a tab:

  <file><TAB><phone>@<start> <phone>@<start> ...

e.g. "a.wav<TAB>h#@0.00 sh@0.15 iy@0.27 h#@0.90": each phone (the model's training phone set) with the start, in
seconds from the beginning of the file, of the encoder frame at which the model emitted it (frames are 10 ms
times the model's stack_frames). Greedy search reports the frames of its own path; the beam searches report
those of the most probable alignment of the phones they found. A file with no phones gives "<file><TAB>".
A model of sentencepiece units prints words instead, each with the time of its first piece.

Audio: anything soundfile reads (wav, flac, NIST sphere, ...), at any sampling rate (resampled to 16 kHz);
several channels are averaged into one. A file that cannot be read (or is not a file, or holds NaN or infinite
samples) is reported on stderr as "error: <file>: <reason>"; the other files are still transcribed and the
exit status is 1.
"""

SENSITIVITY_HELP = """\
Draws d log P(phone) / d input features at the frame where the model first emits the phone on its greedy
path, with respect to the static features (before deltas and normalisation), as in Graves, Mohamed &
Hinton 2013, Fig. 4; panels: the static features, the sensitivity, the reference phone segmentation (cuts
with a phone alignment) and the model's per-frame outputs. Prints the emitting frame and the greedy output.
"""

KALDI_EXPORT_HELP = """\
Writes wav.scp, text, utt2spk, spk2utt (sorted, C locale, as Kaldi's utils/fix_data_dir.sh leaves them),
spk2gender, reco2dur, utt2dur, utt2gender and utt2lang (when every utterance has one), and segments only when
the utterances are not whole recordings. Audio that is not a RIFF WAV file (TIMIT's NIST SPHERE) is read
through "sox ... |". The directory is replaced as a whole. See docs/kaldi_data.md.
"""

KALDI_IMPORT_HELP = """\
Reads wav.scp, text, utt2spk and, when present, segments, spk2gender, utt2lang, spk2utt (checked against
utt2spk), reco2dur (with --use-reco2dur); feats.scp is ignored. wav.scp may hold "command |" pipes. Checks
everything first and stops at the first problem with its file and line; then writes
<output-dir>/<prefix>_{recordings,supervisions}_<split>.jsonl.gz, which a recipe's stage 2 reads.
See docs/kaldi_data.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    model_help = "model.pt, or the experiment directory holding it (e.g. recipes/timit/exp/ctc)"
    device_help = "auto (default): a CUDA GPU if torch finds one, else the CPU"

    command = commands.add_parser("transcribe", help="phones with times, one line per audio file",
                                  description=TRANSCRIBE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--model", type=Path, required=True, help=model_help)
    add_search_flags(command)
    command.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help=device_help)
    command.add_argument("audio", nargs="+", type=Path, help="audio files")

    command = commands.add_parser("export", help="write a TorchScript model",
                                  description="Writes a TorchScript file. CTC: the whole model, normalised "
                                              "features -> log-probabilities; transducer: the encoder as forward, "
                                              "plus initial_state, decoder_step and joint. Both: normalise. See "
                                              "asrkit/inference/export.py for the signatures and the metadata it holds.")
    command.add_argument("--model", type=Path, required=True, help=model_help)
    command.add_argument("--output", type=Path, required=True, help="the .ts file to write")

    command = commands.add_parser("sensitivity", help="input-sensitivity figure of one phone (PNG)",
                                  description=SENSITIVITY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--model", type=Path, required=True, help=model_help)
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio", type=Path, help="an audio file")
    source.add_argument("--cuts", type=Path, help="a cut manifest with features")
    command.add_argument("--utt", help="the cut id in --cuts (default: its first cut)")
    command.add_argument("--token", "--phone", dest="phone",
                         help="a token of the model (a phone, or a sentencepiece piece; default: the first token "
                              "the model emits that is not silence or a closure)")
    command.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help=device_help)
    command.add_argument("--output", type=Path, required=True, help="the PNG file to write")

    command = commands.add_parser("kaldi-export", help="a split's manifests -> Kaldi data directory",
                                  description=KALDI_EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--recordings", type=Path, required=True, help="recordings manifest (.jsonl.gz)")
    command.add_argument("--supervisions", type=Path, required=True, help="supervisions manifest (.jsonl.gz)")
    command.add_argument("--out-dir", type=Path, required=True, help="the Kaldi data directory to write (replaced)")
    command.add_argument("--text-from", choices=TEXT_SOURCES, default="text",
                         help="what the text file holds: the supervisions' text (default), or their phone "
                              "alignment (TIMIT)")
    command.add_argument("--phone-set", type=int, choices=PHONE_SETS, default=48,
                         help="with --text-from phones: TIMIT's 61 labels folded to this set (61: as they are; "
                              "60: q deleted; default 48, as in Kaldi's egs/timit; 39)")
    command.add_argument("--prefix-speaker", action="store_true",
                         help="put the speaker id in front of each utterance id, which Kaldi's sort order needs "
                              "when the ids do not start with it (default: ids unchanged)")

    command = commands.add_parser("kaldi-import", help="Kaldi data directory -> a split's manifests",
                                  description=KALDI_IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--data-dir", type=Path, required=True, help="the Kaldi data directory")
    command.add_argument("--split", required=True, help="the split in the manifest names (train, dev, test)")
    command.add_argument("--prefix", default="timit", help="the recipe in the manifest names (default timit)")
    command.add_argument("--output-dir", type=Path, default=Path("data/manifests"),
                         help="where the manifests go (default data/manifests, a recipe's)")
    command.add_argument("--sampling-rate", type=int, default=16000, help="of the audio (default 16000)")
    command.add_argument("--use-reco2dur", action="store_true",
                         help="take the durations from reco2dur instead of reading every recording (faster; "
                              "unreadable audio is then found only when features are computed; default: read)")
    command.add_argument("--num-jobs", type=int, default=1, help="processes reading audio (default 1)")
    command.add_argument("--pipe-timeout", type=float, default=PIPE_TIMEOUT,
                         help=f"seconds a wav.scp pipe may run before the import stops naming its line "
                              f"(default {PIPE_TIMEOUT:g})")

    command = commands.add_parser("new-recipe", help="a new recipe from the template (docs/new_recipe.md)",
                                  description="Creates DIR/NAME with config.yaml, run.sh, rules/prepare.smk and "
                                              "local/prepare.py, for a corpus of <part>/<utterance>.wav + .txt "
                                              "files and sentencepiece units; adapt local/prepare.py to yours.")
    command.add_argument("name", help="the recipe name: lower-case letters, digits and underscores")
    command.add_argument("--dir", type=Path, default=Path("recipes"), help="where to create it (default recipes)")
    return parser


def transcribe(args: argparse.Namespace) -> int:
    """Print a line per file; report unreadable files on stderr and go on. Returns the exit status."""
    transcriber = Transcriber(args.model, args.method, args.beam, args.device)
    status = 0
    for path in args.audio:
        try:
            transcript = transcriber.transcribe_one(path)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            status = 1
            continue
        print(f"{path}\t{transcript.format()}", flush=True)
    return status


def export(args: argparse.Namespace) -> int:
    export_model(args.model, args.output)
    print(f"{args.model} -> {args.output}")
    return 0


def sensitivity(args: argparse.Namespace) -> int:
    result = plot_sensitivity(args.model, args.phone, args.output, audio=args.audio, cuts=args.cuts, utt=args.utt,
                              device=args.device)
    print(f"{args.output}: d log P({result.phone} at {result.time:.2f} s, encoder frame {result.frame}) "
          f"/ d static features of {result.source}; greedy output: {' '.join(result.emitted)}")
    return 0


def kaldi_export(args: argparse.Namespace) -> int:
    export_kaldi_data_dir(args.recordings, args.supervisions, args.out_dir, args.text_from, args.phone_set,
                          args.prefix_speaker)
    return 0


def kaldi_import(args: argparse.Namespace) -> int:
    import_kaldi_data_dir(args.data_dir, args.sampling_rate, args.output_dir, args.prefix, args.split,
                          args.use_reco2dur, args.num_jobs, args.pipe_timeout)
    return 0


def new_recipe(args: argparse.Namespace) -> int:
    recipe_dir = create_recipe(args.name, args.dir)
    print(f"{recipe_dir}: set corpus_dir in config.yaml, then run {recipe_dir / 'run.sh'} (docs/new_recipe.md)")
    return 0


COMMANDS = {"transcribe": transcribe, "export": export, "sensitivity": sensitivity, "kaldi-export": kaldi_export,
            "kaldi-import": kaldi_import, "new-recipe": new_recipe}


def main(argv: Optional[List[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sensitivity" and args.utt is not None and args.cuts is None:
        parser.error("sensitivity: --utt needs --cuts")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [asrkit] %(message)s")
    try:
        status = COMMANDS[args.command](args)
    except ValueError as e:  # bad models, audio, cuts or phones: the message names the file or the phone
        sys.exit(f"error: {e}")
    sys.exit(status)


if __name__ == "__main__":
    main()
