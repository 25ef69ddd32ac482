"""The config files a recipe's run.sh hands to Snakemake, checked before Snakemake reads them.

Snakemake reads each file as JSON or YAML and then says only "Config file must be given as JSON or YAML with keys
at top level" (or "is not valid JSON or YAML"), without the file; and a key given twice in one file silently
keeps its last value. Here each file must be a mapping of settings without a repeated key, at any depth, and an
error names the file (and line) and the problem.

Usage (local/run_recipe.sh, from the recipe folder): ``python -m asrkit.config_files config.yaml extra.yaml``.
"""

import json
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import yaml

#: what a config file that is not a mapping holds instead, by the Python type YAML gives it
NOT_A_MAPPING = {list: "a YAML list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class ConfigFileError(ValueError):
    """A config file Snakemake would refuse without naming it, or read with a setting silently lost."""


def check_config_file(path: Path) -> None:
    """Raise :class:`ConfigFileError` unless ``path`` is JSON or YAML holding a mapping without repeated keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigFileError(f"{path}: unreadable config file ({e})") from None
    try:  # Snakemake tries JSON first, then YAML
        repeated: List[str] = []
        content = json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, repeated))
        if repeated:
            raise ConfigFileError(f"{path}: key {repeated[0]!r} given twice; only the last would be used")
    except json.JSONDecodeError:
        try:
            content = yaml.safe_load(text)
            duplicate = next(_repeated_yaml_keys(yaml.compose(text, Loader=yaml.SafeLoader)), None)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ConfigFileError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
        if duplicate:
            key, line, first_line = duplicate
            raise ConfigFileError(f"{path}:{line}: key {key!r} given twice (first on line {first_line}); only the "
                                  f"last would be used")
    if content is None:
        raise ConfigFileError(f"{path}: empty (a config file holds settings, e.g. 'training: {{num_epochs: 5}}')")
    if not isinstance(content, dict):
        what = NOT_A_MAPPING.get(type(content), type(content).__name__)
        raise ConfigFileError(f"{path}: {what}, not a mapping of settings (lines such as 'training: "
                              f"{{num_epochs: 5}}')")


def _json_object(pairs: List[Tuple[str, object]], repeated: List[str]) -> dict:
    """A JSON object as a dict, noting its repeated keys in ``repeated`` (json keeps the last silently)."""
    keys = [key for key, _ in pairs]
    repeated += [key for i, key in enumerate(keys) if key in keys[:i]]
    return dict(pairs)


def _repeated_yaml_keys(node: Optional[yaml.Node]) -> Iterator[Tuple[str, int, int]]:
    """(key, line, line of its first occurrence) for each key repeated in a mapping of the YAML node tree."""
    if isinstance(node, yaml.MappingNode):
        first_lines = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in first_lines:
                    yield key.value, line, first_lines[key.value]
                first_lines.setdefault(key.value, line)
            yield from _repeated_yaml_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _repeated_yaml_keys(item)


def main(paths: List[str]) -> None:
    try:
        for path in paths:
            check_config_file(Path(path))
    except ConfigFileError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
