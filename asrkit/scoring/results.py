"""RESULTS.md maintenance: one Markdown table row per (model, decoding), rewritten atomically.

Text before and after the table is kept as it is, so the file can carry a hand-written description.
"""

import re
from numbers import Real
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from asrkit.io import atomic_output

#: A row replaces the existing row with the same values in these columns.
KEY_COLUMNS: Tuple[str, ...] = ("model", "decoding")
#: Number formats by column; other floats get ``DEFAULT_FLOAT_FORMAT``, other values ``str``.
COLUMN_FORMATS: Dict[str, str] = {"params": ",", "RTF": ".3g"}
DEFAULT_FLOAT_FORMAT = ".2f"
#: The column holding a model's result: in the row of the decoding chosen on dev, that row's test error rate.
RESULT_COLUMN = "result"
DEFAULT_HEADER = (
    "# Results\n\n"
    "One row per (model, decoding); error rates in percent with ins/del/sub counts, RTF = decoding time / "
    "audio duration. Each model's result is the test error rate of its decoding of lowest dev error rate (the "
    f"`{RESULT_COLUMN}` column; chosen on dev, never on test). Rows are written by the recipes "
    "(asrkit.scoring.results.update_results_table); text outside the table is kept.\n"
)

_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


def update_results_table(
    path: Union[str, Path],
    row: dict,
    columns: Sequence[str],
    header: str = DEFAULT_HEADER,
) -> None:
    """Put ``row`` into the results table at ``path``: replace the row with the same (model, decoding), else
    append; rows are sorted by model then decoding (numbers inside names compare numerically).

    row: values by column name; the key columns are required, missing columns are left empty.
    columns: the table's columns, in order; columns found only in the existing file are kept
        after them. header: text written above the table when ``path`` does not exist yet.
    """
    columns = list(columns)
    missing_keys = [key for key in KEY_COLUMNS if row.get(key) in (None, "")]
    if missing_keys:
        raise ValueError(f"results row lacks the key columns {missing_keys}: {row}")
    unknown = sorted(set(row) - set(columns))
    if unknown:
        raise ValueError(f"results row has columns {unknown} that are not in the table columns {columns}")
    new_row = {column: _format_value(column, value) for column, value in row.items()}

    path = Path(path)
    before, table_columns, rows, after = _parse(path.read_text() if path.exists() else header)
    columns += [column for column in table_columns if column not in columns]
    key = _key(new_row)
    rows = [existing for existing in rows if _key(existing) != key] + [new_row]
    rows.sort(key=lambda r: [_natural_key(part) for part in _key(r)])

    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in before + _render(columns, rows) + after))


def remove_model_rows(path: Union[str, Path], model: str) -> int:
    """Delete the rows of ``model`` (its ``model`` column) from the results table at ``path``, if there is one;
    the number of rows deleted."""
    path = Path(path)
    if not path.exists():
        return 0
    before, columns, rows, after = _parse(path.read_text())
    kept = [row for row in rows if row.get("model") != model]
    if len(kept) < len(rows):
        with atomic_output(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in before + _render(columns, kept) + after))
    return len(rows) - len(kept)


def choose_on_dev(rows: Sequence[Dict[str, str]], metric: str) -> Dict[str, Dict[str, str]]:
    """Each model's row of lowest dev ``metric`` (the first of equals, in table order), among the rows with a
    dev and a test value: model -> row. The test set plays no part in the choice."""
    chosen: Dict[str, Dict[str, str]] = {}
    for row in rows:
        dev, test = row.get(f"dev {metric}", ""), row.get(f"test {metric}", "")
        if not dev or not test:
            continue
        best = chosen.get(row["model"])
        if best is None or float(dev) < float(best[f"dev {metric}"]):
            chosen[row["model"]] = row
    return chosen


def mark_results(path: Union[str, Path], metric: str) -> Dict[str, Tuple[str, str]]:
    """Fill the :data:`RESULT_COLUMN` of the results table at ``path``: each model's test ``metric`` in the row
    of its decoding chosen on dev (:func:`choose_on_dev`), empty in its other rows. Returns model ->
    (decoding, test value); the table is left alone when no row has both dev and test values."""
    path = Path(path)
    before, columns, rows, after = _parse(path.read_text())
    chosen = choose_on_dev(rows, metric)
    if not chosen:
        return {}
    for row in rows:
        row[RESULT_COLUMN] = row[f"test {metric}"] if chosen.get(row["model"]) is row else ""
    others = [column for column in columns if column != RESULT_COLUMN]
    columns = others[:len(KEY_COLUMNS)] + [RESULT_COLUMN] + others[len(KEY_COLUMNS):]  # beside model, decoding
    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in before + _render(columns, rows) + after))
    return {model: (row["decoding"], row[f"test {metric}"]) for model, row in chosen.items()}


def read_results(path: Union[str, Path]) -> Dict[str, Tuple[str, str]]:
    """The models' results marked in the table at ``path`` (:func:`mark_results`): model -> (decoding, value)."""
    _, _, rows, _ = _parse(Path(path).read_text())
    return {row["model"]: (row["decoding"], row[RESULT_COLUMN]) for row in rows if row.get(RESULT_COLUMN)}


def _format_value(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Real) and not isinstance(value, bool):
        if column in COLUMN_FORMATS:
            return format(value, COLUMN_FORMATS[column])
        if isinstance(value, float):
            return format(value, DEFAULT_FLOAT_FORMAT)
    return str(value)


def _parse(text: str) -> Tuple[List[str], List[str], List[Dict[str, str]], List[str]]:
    """Split a Markdown file into (lines before the first table, its columns, its rows, lines after it)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("|")), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")  # a table must be separated from a preceding paragraph
        return lines, [], [], []
    end = start
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1
    table = [_cells(line) for line in lines[start:end]]
    columns = table[0]
    body = table[2:]  # table[1] is the |---| separator
    rows = [dict(zip(columns, cells)) for cells in body]
    return lines[:start], columns, rows, lines[end:]


def _cells(line: str) -> List[str]:
    inner = line.strip()[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SEPARATOR.split(inner)]


def _render(columns: List[str], rows: List[Dict[str, str]]) -> List[str]:
    """The table with columns padded to equal width, so it also reads well as plain text."""
    table = [[cell.replace("|", "\\|") for cell in (row.get(column, "") for column in columns)] for row in rows]
    widths = [max([len(column), 3] + [len(cells[i]) for cells in table]) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return [line(columns), line(["-" * width for width in widths])] + [line(cells) for cells in table]


def _key(row: Dict[str, str]) -> Tuple[str, ...]:
    return tuple(row.get(column, "") for column in KEY_COLUMNS)


def _natural_key(text: str) -> List[Union[int, str]]:
    """Sort key under which "beam10" < "beam100" and "blstm3" < "blstm5"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]
