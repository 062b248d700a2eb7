"""YAML files that people edit by hand: config.yaml and mappings/*.yaml.

Whoever edits these files is often not a programmer, so every problem is reported as
``file:line:col: a plain sentence`` pointing at the exact key or value, and *every*
problem found is reported, not only the first. ruamel.yaml keeps the position of each
key and item; pydantic validates; this module turns pydantic's error locations back into
positions in the file.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, TypeVar

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import VersionedResolver

try:  # libyaml's scanner and parser, as ruamel.yaml.clib builds them (a dependency; optional)
    from _ruamel_yaml import CParser as _CParser
except ImportError:  # pragma: no cover - the pure parser gives the same trees, 5x slower
    _CParser = None

M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class YamlFileError(Exception):
    """One or more problems in a hand-edited YAML file; str() lists them one per line."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, with an unquoted date left as text: pydantic reads it
    against the field, so an impossible one (``from: 2026-02-30``) is a problem at its own
    ``file:line:col`` like any other bad value, instead of ruamel's bare ValueError ("day is
    out of range for month") out of the loader."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Constructor = _Constructor
    y.allow_duplicate_keys = False
    return y


if _CParser is not None:
    class _CLoader(_CParser, _Constructor, VersionedResolver):  # type: ignore[misc, valid-type]
        """libyaml composes the nodes (with the same line and column marks), ruamel's own
        round-trip constructor builds the tree from them: the same CommentedMap/CommentedSeq
        with the same positions, ScalarFloat widths and duplicate-key check as the pure
        parser, without the comments (nothing here reads them). Issue 13: the pure parser
        was 17 ms of a 4.5 KB mapping file, minutes for 10,000 files at start; this is 3 ms."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            self._parser = self._composer = self
            _Constructor.__init__(self, loader=self)
            self.allow_duplicate_keys = False
            self.comment_handling = None
            VersionedResolver.__init__(self, loadumper=self)

        # no %YAML directive reaches this loader (see _load_fast): YAML 1.2, as the pure
        # parser reads such a file; looked up once, not through three attributes per scalar
        processing_version = (1, 2)


def _load_fast(text: str) -> Any:
    """The tree through libyaml, or ``_SLOW`` when only the pure parser can say (any error, so
    that its file:line:col and sentence are the ones given; a %YAML directive; a tag, which
    the round-trip constructor keeps as a TaggedScalar only when the pure parser composed it)."""
    if _CParser is None or "%YAML" in text or "!" in text:
        return _SLOW
    loader = _CLoader(text)
    try:
        return loader.get_single_data()
    except Exception:  # the pure parser below reports it, with its own words and position
        return _SLOW
    finally:
        loader.dispose()


_SLOW = object()


def load(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file, keeping positions. Syntax errors raise YamlFileError."""
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise YamlFileError([Problem(path, 1, 1, "the file does not exist")]) from None
        except UnicodeDecodeError as e:
            raise YamlFileError([Problem(path, 1, 1, f"the file is not UTF-8 text ({e.reason})")]) from None
    tree = _load_fast(text)
    if tree is not _SLOW:
        return tree
    try:
        return _yaml().load(io.StringIO(text))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlFileError([Problem(path, line, col, _syntax_sentence(e))]) from None
    except YAMLError as e:  # pragma: no cover - ruamel marks nearly everything
        raise YamlFileError([Problem(path, 1, 1, f"this is not valid YAML: {e}")]) from None


def _syntax_sentence(e: MarkedYAMLError) -> str:
    problem = (e.problem or "").strip()
    if "found character '\\t'" in problem or "\\t" in problem:
        return "a tab is used for indentation here; YAML needs spaces"
    if "found duplicate key" in problem or "duplicate key" in str(e):
        return f"this key appears twice in the same block ({problem})"
    if "expected <block end>" in problem or "block mapping" in (e.context or ""):
        return (
            "the indentation is wrong here: this line does not line up with the lines "
            f"around it ({problem})"
        )
    if "mapping values are not allowed" in problem:
        return "a ':' appears where it cannot; put quotes around a value that contains ': '"
    return f"this is not valid YAML: {problem or e}"


def position(node: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    """1-based (line, col) of the key or item at ``loc`` inside a ruamel tree.

    Walks as far as the tree goes; a missing key points at its parent block.
    """
    line, col = (getattr(node, "lc", None) and (node.lc.line + 1, node.lc.col + 1)) or (1, 1)
    cur = node
    for i, part in enumerate(loc):
        if isinstance(cur, CommentedMap) and part in cur:
            last = i == len(loc) - 1
            kl, kc = cur.lc.key(part)
            vl, vc = cur.lc.value(part)
            line, col = (kl + 1, kc + 1) if last else (vl + 1, vc + 1)
            if last and not isinstance(cur[part], (CommentedMap, CommentedSeq)):
                # point at the value of a scalar: that is what is wrong
                line, col = vl + 1, vc + 1
            cur = cur[part]
        elif isinstance(cur, CommentedSeq) and isinstance(part, int) and 0 <= part < len(cur):
            il, ic = cur.lc.item(part)
            line, col = il + 1, ic + 1
            cur = cur[part]
        else:
            break
    return line, col


def key_position(node: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    """Position of the *key* at the end of ``loc`` (for 'unknown key' problems)."""
    parent = node
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return position(node, loc)
    if isinstance(parent, CommentedMap) and loc and loc[-1] in parent:
        kl, kc = parent.lc.key(loc[-1])
        return kl + 1, kc + 1
    return position(node, loc)


def plain(data: Any) -> Any:
    """The ruamel tree as plain dicts and lists (for pydantic)."""
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def _allowed_keys(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases) allowed at the parent of ``loc``, following the model tree."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return []
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:
            return []
        current = _inner_model(field.annotation)
    fields = getattr(current, "model_fields", None) or {}
    return [f.alias or name for name, f in fields.items()]


def _inner_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def sentence(err: dict[str, Any], model: type[pydantic.BaseModel] | None = None) -> str:
    """A pydantic error as a sentence a revenue manager understands."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "this value")
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc) if model else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (
            f"; the keys allowed here are: {', '.join(sorted(allowed))}" if allowed else "")
        return f"'{name}' is not a key that belongs here{hint}"
    if kind == "missing":
        return f"'{name}' is missing and must be given"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"'{name}' must be a whole number, not {given!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"'{name}' must be true or false, not {given!r}"
    if kind in ("string_type",):
        return f"'{name}' must be text, not {given!r}"
    if kind in ("dict_type", "model_type"):
        return f"'{name}' must be a block of 'key: value' lines, not {given!r}"
    if kind in ("list_type",):
        return f"'{name}' must be a list (lines starting with '- '), not {given!r}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"'{name}' is {given!r}, which is out of range: {err['msg'].lower()}"
    if kind == "literal_error":
        return f"'{name}' is {given!r}; {err['msg'].lower()}"
    if kind in ("value_error", "assertion_error"):
        msg = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        return msg
    return f"'{name}': {err['msg']}"


def validate(model: type[M], data: Any, path: str | Path, *, context: dict | None = None) -> M:
    """Validate a loaded YAML tree against a pydantic model; every error with its position."""
    path = str(path)
    if data is None:
        data = CommentedMap()
    try:
        return model.model_validate(plain(data), context=context)
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if err["type"] == "extra_forbidden":
                line, col = key_position(data, loc)
            else:
                line, col = position(data, loc)
            problems.append(Problem(path, line, col, sentence(err, model)))
        raise YamlFileError(problems) from None
