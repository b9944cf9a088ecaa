"""Write docs/reference.md from the code that defines it: the suite schema, the pytest options, the commands.

    python docs/make_reference.py            # rewrite docs/reference.md
    python docs/make_reference.py --check    # exit 1 if it is stale (the tests run this)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "docs" / "reference.md"


def _field_docs(cls: type) -> dict[str, str]:
    """``#:`` comments above each field of a class, else its trailing comment."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"^    ([a-z_]+):", line)
        if m:
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line and "type: ignore" not in line else ""
            docs[m.group(1)] = " ".join(pending) or trailing
        if not stripped.startswith("#"):
            pending = []
    return docs


def _type_name(annotation: Any) -> str:
    """A suite author's words for a type: ``list of X``, ``a or b``, ``one of 'x', 'y'``."""
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type_name(a) for a in args if a is not type(None)))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict or annotation is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(info: Any) -> str:
    out = []
    for meta in info.metadata:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="),
                           ("pattern", "matches")):
            value = getattr(meta, name, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def _default(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if info.default_factory is not None:
        value = info.default_factory()
        if value in ({}, []):
            return ""
        if hasattr(type(value), "model_fields"):
            return "(below)"
        if isinstance(value, list):
            return f"`{[v.model_dump(exclude_defaults=True) for v in value]}`"
        return f"`{value!r}`"
    if info.default is PydanticUndefined:
        return "required"
    return "" if info.default is None else f"`{info.default!r}`"


def _nested(annotation: Any) -> list[Any]:
    from pydantic import BaseModel

    found = []
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            found.append(arg)
        else:
            found.extend(_nested(arg) if typing.get_args(arg) else [])
    return found


def suite_keys() -> list[str]:
    from pydantic import BaseModel

    from bench.suite.schema import SuiteSpec

    lines = ["## Suite keys", "",
             "Every key a suite file may hold, from the schema (`bench/suite/schema.py`); an unknown key is an error "
             "naming the file and the key. [guide.md](guide.md#suite-format) has an annotated example.", ""]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("", SuiteSpec)]
    while queue:
        prefix, cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"### `{prefix or 'top level'}`", ""] + ([doc, ""] if doc and cls is not SuiteSpec else [])
        lines += ["| key | type | default | constraints | meaning |", "|---|---|---|---|---|"]
        docs = _field_docs(cls)
        for name, info in cls.model_fields.items():
            lines.append(f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {_constraints(info)} | "
                         f"{docs.get(name, '').replace('|', '/')} |")
            for sub in _nested(info.annotation):
                many = "list" in str(info.annotation)
                queue.append((f"{prefix}{'.' if prefix else ''}{name}{'[]' if many else ''}", sub))
        lines.append("")
    return lines


class _Recorder:
    """Stands in for pytest's parser and option group: records what the plugin declares."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self.ini: list[tuple[str, str, Any]] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))

    def addini(self, name: str, help: str, type: Any = None, default: Any = None) -> None:
        self.ini.append((name, help, default))


def pytest_options() -> list[str]:
    from bench.plugin import pytest_addoption

    rec = _Recorder()
    pytest_addoption(rec)  # type: ignore[arg-type]
    lines = ["## pytest options", "", "What the plugin adds to pytest (`bench/plugin/__init__.py`).", "",
             "| option | default | meaning |", "|---|---|---|"]
    for names, kw in rec.options:
        meta = kw.get("metavar") or ("|".join(kw["choices"]) if kw.get("choices") else "")
        default = kw.get("default")
        shown = "" if default in (None, [], False) else f"`{default}`"
        lines.append(f"| `{' / '.join(names)}{' ' + meta if meta else ''}` | {shown} | {kw.get('help', '')} |")
    lines += ["", "| ini option | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {text} |" for name, text, default in rec.ini]
    return [*lines, ""]


def _command(title: str, command: argparse.ArgumentParser, depth: int) -> list[str]:
    """One command's section: its description, usage and arguments, then its subcommands'."""
    about = (command.description or "").strip()
    lines = [f"{'#' * depth} `{title}`", "", *([about, ""] if about else []), "```",
             command.format_usage().strip().replace("usage: ", ""), "```", ""]
    rows = []
    inner = None
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            inner = action
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flag = ", ".join(action.option_strings) or action.metavar or action.dest
        shown = "" if action.default in (None, [], False, argparse.SUPPRESS) else f"`{action.default}`"
        rows.append(f"| `{flag}` | {shown} | {(action.help or '').replace('%%', '%').replace('|', '/')} |")
    if rows:
        lines += ["| argument | default | meaning |", "|---|---|---|", *rows, ""]
    for name, sub in (inner.choices.items() if inner else []):
        lines += _command(f"{title} {name}", sub, depth + 1)
    return lines


def commands() -> list[str]:
    from bench.__main__ import build_parser

    parser = build_parser()
    lines = ["## Commands", "", "`python -m bench` and `tvm-bench` (`bench/__main__.py`); each prints the same with "
             "`--help`.", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        lines += _command(name, command, 3)
    return lines


def render() -> str:
    lines = ["# Reference", "",
             "Generated by `python docs/make_reference.py` from the schema and the parsers, so it cannot drift "
             "from them (a test fails when it is stale). How to use them: [guide.md](guide.md).", ""]
    lines += suite_keys() + pytest_options() + commands()
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python docs/make_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
