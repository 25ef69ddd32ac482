"""The size and SHA-256 of each feature archive, recorded when stage 2 writes it and checked before it is read.

A ``feats.lca`` cut short (a full disk during a copy, a bad sync) made training fail inside a DataLoader worker
with ``lilcom: Length of string was too short``, naming no archive, and a rerun changed nothing: Snakemake saw
the features as up to date. Stage 2 now writes ``archives.json`` beside the archives of each shard (one job writes
``feats.lca``, several ``feats/feats-<i>.lca``). The rules that read a split's features (statistics, training,
decoding) first run ``python -m asrkit.data.feature_archives --cuts ...``: an archive that differs from its record
is named, with the cuts stored in it, and with ``--remove-damaged`` its shard's folder and the cut manifest (both
Snakemake outputs of stage 2) are removed, so that the rerun recomputes them, and what was made from them,
without anything deleted by hand. The standard library alone reads the cut manifests here: the check starts in a fraction of a
second, without torch or lhotse.
"""

import argparse
import gzip
import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from asrkit.io import atomic_output, file_sha256

#: the record of a shard's archives, at the top of its storage folder
ARCHIVE_RECORD = "archives.json"
ARCHIVE_SUFFIX = ".lca"


def record_archives(storage_dir: Path) -> None:
    """Write ``storage_dir/archives.json``: the size and SHA-256 of every archive under it, by relative path."""
    record = {str(p.relative_to(storage_dir)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
              for p in sorted(storage_dir.rglob(f"*{ARCHIVE_SUFFIX}"))}
    with atomic_output(storage_dir / ARCHIVE_RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def find_record(archive: Path) -> Optional[Tuple[Path, Dict]]:
    """(the storage folder, the entry of ``archive`` in its record), or None for an archive without one
    (features written before archives were recorded)."""
    for storage_dir in (archive.parent, archive.parent.parent):
        record_path = storage_dir / ARCHIVE_RECORD
        if record_path.is_file():
            entry = json.loads(record_path.read_text()).get(str(archive.relative_to(storage_dir)))
            return (storage_dir, entry) if entry is not None else None
    return None


def archive_problem(archive: Path, entry: Dict) -> Optional[str]:
    """How ``archive`` differs from its record: missing, another size, another SHA-256; None when it does not."""
    if not archive.is_file():
        return "missing"
    size = archive.stat().st_size
    if size != entry["bytes"]:
        return f"{size} bytes, {entry['bytes']} when it was written ({'cut short' if size < entry['bytes'] else 'grown'})"
    if file_sha256(archive) != entry["sha256"]:
        return "its content changed since it was written (SHA-256 differs)"
    return None


def damaged_archives(cuts_path: Path) -> List[Tuple[Path, Path, str, List[str]]]:
    """(archive, its storage folder, the problem, ids of the cuts stored in it) of every archive that the cuts of
    ``cuts_path`` read and that differs from its record."""
    cuts_by_archive: Dict[Path, List[str]] = defaultdict(list)
    with gzip.open(cuts_path, "rt") as lines:  # lhotse's cut manifest: a JSON object per line
        for line in lines:
            cut = json.loads(line)
            if cut.get("features"):
                cuts_by_archive[Path(cut["features"]["storage_path"])].append(cut["id"])
    damaged, unrecorded = [], 0
    for archive, cut_ids in sorted(cuts_by_archive.items()):
        found = find_record(archive)
        if found is None:
            unrecorded += 1
            continue
        problem = archive_problem(archive, found[1])
        if problem:
            damaged.append((archive, found[0], problem, cut_ids))
    if unrecorded:
        logging.info(f"{cuts_path}: {unrecorded} archive(s) without a record ({ARCHIVE_RECORD}): not checked")
    return damaged


def verify_archives(cuts_paths: List[Path], remove_damaged: bool) -> List[str]:
    """Check every archive that the cuts of ``cuts_paths`` read; one message per damaged archive, naming it, the
    problem, its cuts and what fixes it.

    With ``remove_damaged``, its storage folder is removed, and the cut manifest that reads it: Snakemake looks
    for the missing outputs of a stage only where a job that must run reads them, so the manifest that the
    failed job read must go too (rule ``features`` reads the storage folders as well), and the rerun recomputes
    that shard, the manifest, and what was made from them."""
    messages = []
    for cuts_path in cuts_paths:
        damaged = damaged_archives(cuts_path)
        for archive, storage_dir, problem, cut_ids in damaged:
            shown = ", ".join(cut_ids[:3]) + (", ..." if len(cut_ids) > 3 else "")
            if remove_damaged and storage_dir.exists():
                shutil.rmtree(storage_dir)
            fix = (f"removed {storage_dir} and {cuts_path}: a rerun recomputes them (stage 2) and what was made from "
                   f"them" if remove_damaged else f"remove {storage_dir} and rerun to recompute it")
            messages.append(f"{archive}: damaged feature archive: {problem}; it holds the features of {len(cut_ids)} "
                            f"cut(s) of {cuts_path} ({shown}); {fix}")
        if damaged and remove_damaged:
            cuts_path.unlink(missing_ok=True)
    return messages


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, nargs="+", required=True, help="cut manifests whose archives to check")
    parser.add_argument("--remove-damaged", action="store_true",
                        help="remove the storage folder of a damaged archive, so that a rerun recomputes it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [feature_archives] %(message)s")
    damaged = verify_archives(args.cuts, args.remove_damaged)
    if damaged:
        raise SystemExit("error: " + "\nerror: ".join(damaged))
    logging.info(f"the feature archives of {', '.join(map(str, args.cuts))} are as they were written")


if __name__ == "__main__":
    main()
