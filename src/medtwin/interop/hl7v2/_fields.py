"""Field access, escaping and field locators shared by the reader and the writer.

A field locator names one field of one segment the way HL7 v2 documentation does: ``PV2-25``,
``PV1-18`` or ``ZTR-1`` (optionally ``.n`` for a component, ``PV2-40.1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldLocator",
    "component",
    "escape",
    "locator",
    "repetitions",
    "segment_id_ok",
    "unescape",
]

_LOCATOR = re.compile(r"(?P<seg>[A-Z][A-Z0-9]{2})-(?P<field>[1-9]\d{0,2})(?:\.(?P<comp>[1-9]\d?))?")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


@dataclass(frozen=True, slots=True)
class FieldLocator:
    """One component of one field of a segment: ``PV2-25`` is ``FieldLocator("PV2", 25, 1)``."""

    segment: str
    field: int
    component: int = 1

    def __str__(self) -> str:
        tail = f".{self.component}" if self.component != 1 else ""
        return f"{self.segment}-{self.field}{tail}"


def locator(text: str) -> FieldLocator:
    """Parse ``"PV2-25"``, ``"ZTR-1"`` or ``"PV2-40.1"``; a ``ValueError`` names what is wrong."""
    match = _LOCATOR.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or match.group("seg") == "MSH":
        raise ValueError(
            f"{text!r} is not a field locator; expected a segment ID and field number such as "
            "'PV2-25' or 'ZTR-1' (MSH fields are not allowed)"
        )
    return FieldLocator(
        match.group("seg"), int(match.group("field")), int(match.group("comp") or 1)
    )


def segment_id_ok(text: str) -> bool:
    """Whether ``text`` is a valid segment ID (three characters, a capital letter first)."""
    return _SEGMENT_ID.fullmatch(text) is not None


def _pick(node: Any, index: int) -> Any:
    # python-hl7 nests Field > Repetition > Component > sub-component, but a level without its
    # separator is a plain string: "A" is Field(["A"]), "A^B" is Field([Repetition([["A"], ["B"]])])
    if isinstance(node, str):
        return node if index == 0 else ""
    return node[index] if index < len(node) else ""


def component(segment: Any, field: int, comp: int = 1, rep: int = 1, sub: int = 1) -> str:
    """The raw text (escapes not yet resolved) of ``segment``-``field``.``comp`` in repetition ``rep``.

    Works for MSH too: python-hl7 puts MSH-1 (the field separator) at index 1, so index n is
    MSH-n as for every other segment.
    """
    if field >= len(segment):
        return ""
    node = _pick(_pick(_pick(segment[field], rep - 1), comp - 1), sub - 1)
    while not isinstance(node, str):  # deeper than asked: take the first element
        node = node[0] if len(node) else ""
    return node


def repetitions(segment: Any, field: int) -> int:
    """How many repetitions ``segment``-``field`` has (0 when it is empty or absent)."""
    if field >= len(segment):
        return 0
    value = segment[field]
    if len(value) == 1 and isinstance(value[0], str):
        return 1 if value[0] else 0
    return len(value)


_ESCAPES = (
    ("\\", "\\E\\"),
    ("|", "\\F\\"),
    ("^", "\\S\\"),
    ("&", "\\T\\"),
    ("~", "\\R\\"),
    ("\r", "\\X0D\\"),
    ("\n", "\\X0A\\"),
)


def escape(text: str) -> str:
    r"""``text`` with HL7's delimiters written as escape sequences (chapter 2).

    Assumes the default encoding characters ``^~\&`` and field separator ``|``, which the
    messages medtwin writes use.

    Examples
    --------
    >>> escape("4A|2^B")
    '4A\\F\\2\\S\\B'
    """
    for raw, escaped in _ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


_HEX = re.compile(r"[0-9A-Fa-f]+")
_SEQUENCE = re.compile(r"[HN]|\.[a-z]{2}[+-]?\d*|[CM][0-9A-Fa-f]+|Z.*")


def unescape(text: str, separators: str, esc: str) -> str:
    r"""``text`` with HL7 escape sequences resolved (chapter 2).

    ``separators`` are python-hl7's ``Message.separators`` (segment, field, repetition,
    component, sub-component) and ``esc`` the escape character.  ``\F\ \S\ \T\ \R\ \E\`` give
    the delimiters, ``\Xhh..\`` the bytes (UTF-8, else Latin-1), ``\.br\`` a line break;
    highlighting (``\H\``, ``\N\``), other formatting and character-set sequences are dropped; an
    empty or unknown sequence is kept as written.  (python-hl7's own ``unescape`` warns through a
    deprecated logging call on an empty one.)

    Examples
    --------
    >>> unescape(r"4\S\A\X41\ \\ 5\F\6", "\r|~^&", "\\")
    '4^AA \\\\ 5|6'
    """
    if esc not in text:
        return text
    delimiters = {
        "F": separators[1],
        "R": separators[2],
        "S": separators[3],
        "T": separators[4],
        "E": esc,
    }
    out: list[str] = []
    i = 0
    while i < len(text):
        start = text.find(esc, i)
        end = text.find(esc, start + 1) if start >= 0 else -1
        if start < 0 or end < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        body = text[start + 1 : end]
        if body in delimiters:
            out.append(delimiters[body])
        elif body[:1] == "X" and len(body) % 2 == 1 and _HEX.fullmatch(body[1:]):
            data = bytes.fromhex(body[1:])
            try:
                out.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(data.decode("latin-1"))
        elif body == ".br":
            out.append("\n")
        elif not _SEQUENCE.fullmatch(body):
            out.append(text[start:end])  # not a sequence: keep it; ``end`` may open the next
            i = end
            continue
        i = end + 1
    return "".join(out)
