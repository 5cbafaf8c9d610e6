"""
One error model: every exception the receiver raises derives from ReceiverError,
is drawn in ``errors.py``'s tree and is raised somewhere; every close code is a
``CloseCode`` member, and the docs' close-code table says the same.

Read from the source (``ast``), not by importing every module: the optional
engines (pocketsphinx, psycopg, redis) need not be installed for this to run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import websockets.frames

from receiver import errors
from receiver.errors import CloseCode

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "receiver"
BUILTIN_BASES = {"Exception", "ValueError", "BaseException", "RuntimeError", "OSError", "LookupError"}


def _sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def _exception_classes() -> dict[str, list[str]]:
    """Every class in receiver/ that is an exception: name -> base names."""
    bases: dict[str, list[str]] = {}
    for text in _sources().values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                names = [
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, ast.Name | ast.Attribute)
                ]
                bases[node.name] = names

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in BUILTIN_BASES:
            return True
        if name in seen or name not in bases:
            return False
        return any(is_exception(b, seen | {name}) for b in bases[name])

    return {name: found for name, found in bases.items() if is_exception(name)}


def _derives_from_receiver_error(name: str, classes: dict[str, list[str]]) -> bool:
    if name == "ReceiverError":
        return True
    return any(b in classes and _derives_from_receiver_error(b, classes) for b in classes[name])


def test_every_exception_derives_from_receiver_error() -> None:
    classes = _exception_classes()

    assert "ReceiverError" in classes
    assert [name for name in classes if not _derives_from_receiver_error(name, classes)] == []


def test_every_exception_is_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", tree)) | {"ReceiverError"}

    assert drawn == set(_exception_classes())


def test_every_exception_class_is_raised_or_subclassed() -> None:
    classes = _exception_classes()
    text = "\n".join(_sources().values())
    bases = {b for found in classes.values() for b in found}

    unused = [
        name
        for name in classes
        if name not in bases and not re.search(rf"(?<!class )\b{name}(\(|\.from_)", text.replace(f"class {name}(", ""))
    ]

    assert unused == []


def test_close_codes_are_the_standard_ones_where_the_standard_has_them() -> None:
    standard = {code.value: code.name for code in websockets.frames.CloseCode}

    for code in CloseCode:
        if code < 4000:
            assert standard[code.value] == code.name
        else:
            assert 4000 <= code < 5000


def test_no_bare_close_code_numbers_in_the_code() -> None:
    """Close codes are named: a bare 1008 or 4400 in receiver/ (outside errors.py and docstrings) is a slip."""
    numbers = {str(int(code)) for code in CloseCode}
    found = []
    for path, text in _sources().items():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and type(node.value) is int and str(node.value) in numbers:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")

    # Milliseconds and the like that happen to equal a code are not close codes.
    assert [f for f in found if not f.endswith(": 1000")] == []


def _documented_close_codes() -> dict[int, str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d{4})\s*\|\s*([^|]+?)\s*\|", section, flags=re.M)
    return {int(code): name for code, name in rows}


def test_the_docs_close_code_table_is_the_enum() -> None:
    documented = _documented_close_codes()

    assert documented == {int(code): code.name.lower().replace("_", " ") for code in CloseCode}
