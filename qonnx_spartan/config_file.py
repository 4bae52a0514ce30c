"""Reading the user's YAML or JSON files (budgets, plans, studies): every way a file can be unreadable or
invalid is one line."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from qonnx_spartan.errors import SpartanError


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" merges keys, which the mapping's own keys may override
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # the base class refuses unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_config(path: Path, kind: str):
    """The parsed contents of a YAML or JSON file (JSON is YAML), or a SpartanError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpartanError(f"{path}: {kind} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpartanError(f"{path}: cannot read {kind} file ({e.__class__.__name__})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None)
        raise SpartanError(f"{path}: not valid YAML or JSON{line}" + (f" ({problem})" if problem else "")) from None
    except RecursionError:  # the YAML parser recurses once per level
        raise SpartanError(f"{path}: nested too deeply to be a {kind} file") from None


def validated(model: type[BaseModel], data, path: Path, kind: str, fields: str):
    """`data` (a file's parsed contents) as a `model`, or a SpartanError naming the file and the field."""
    if not isinstance(data, dict):
        raise SpartanError(f"{path}: a {kind} is a mapping of fields ({fields})")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpartanError(f"{path}: {describe_validation_error(e)}") from None


def describe_validation_error(e: ValidationError) -> str:
    """The first pydantic error as 'field a.b: message'."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return f"field '{field}': {msg}{more}"
