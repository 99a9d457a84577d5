"""Text formatting shared by the CLI summary and the TUI: visible whitespace, fixed-width numbers,
untrusted text made inert for a terminal, credentials in URLs hidden."""

from __future__ import annotations

import re
import unicodedata

_VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def _inert_table() -> dict[int, str]:
    """Every character that could act on a terminal or disguise text, as something visible:
    C0 controls as their control pictures (ESC ␛, BEL ␇, …), DEL ␡, C1 controls (8-bit CSI,
    OSC, …) and bidi overrides/isolates and line/paragraph separators as ``⟨U+XXXX⟩``."""
    table = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
    table[0x7F] = "␡"
    for code in [*range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]:
        table[code] = f"⟨U+{code:04X}⟩"
    return table


_INERT = _inert_table()


def inert(text: str) -> str:
    """Untrusted text (a prompt, a token, a server's or a file's message) made safe for a
    terminal: nothing in it can move the cursor, set the title or clipboard, ring the bell or
    reorder what is shown; newlines and tabs stay (callers that need one line flatten them)."""
    return text.translate(_INERT)


_UNINERT = re.compile("[\u2400-\u241f\u2421]|⟨U\\+([0-9A-F]{4})⟩")


def uninert(text: str) -> str:
    """The inverse of :func:`inert` for text the user edited in the app (the editor shows a
    prompt's control characters as their pictures, so none reaches the terminal, and saving
    puts them back): ``␛`` is ESC again, ``⟨U+202E⟩`` the bidi override. A picture typed by
    hand becomes its control character too."""

    def back(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            code = int(match.group(1), 16)
            return chr(code) if code in _INERT else match.group(0)
        char = match.group(0)
        return "\x7f" if char == "␡" else chr(ord(char) - 0x2400)

    return _UNINERT.sub(back, text)


def visible(text: str) -> str:
    """A token as shown: whitespace visible (space ␣, newline ↵, tab ⇥, so two tokens that differ
    only in it look different) and every control character inert."""
    return inert(text.translate(_VISIBLE))


def one_line(text: str) -> str:
    """Untrusted text for a one-line message (an error, a progress line): inert, and its line
    breaks and tabs shown as ``↵``/``⇥`` so the message stays one line."""
    return inert(text.replace("\r\n", "\n").translate(_LINE_BREAKS))


_LINE_BREAKS = str.maketrans({"\n": "↵", "\t": "⇥", "\r": "↵", "\x0b": "↵", "\x0c": "↵"})

# scheme://USERINFO@ — USERINFO up to the last @ before the end of the value (a comma, a quote,
# whitespace), so a password holding ``/`` or ``@`` is hidden whole
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s,'\"<>]*@")


def has_userinfo(text: str) -> bool:
    """Whether ``text`` holds a URL with a user name or password (``http://user:pass@host``)."""
    return _USERINFO.search(text) is not None


def without_userinfo(text: str) -> str:
    """``text`` with every URL's user name and password replaced by ``***``
    (``http://user:pass@host/v1`` -> ``http://***@host/v1``): what may be shown or stored."""
    return _USERINFO.sub(r"\1***@", text)


def number(value: float | None, digits: int = 4) -> str:
    """A logprob/margin with enough digits to see a 1e-3 difference; '—' for unknown."""
    if value is None:
        return "—"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def cells(text: str) -> int:
    """Terminal cells ``text`` takes: wide (East Asian W/F) characters two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


BARS = " ▁▂▃▄▅▆▇█"
LOG_FLOOR, LOG_CEIL = -7.0, 0.0  # the axis of the per-layer charts: relative differences 1e-7 … 1


def log_fraction(value: float) -> float:
    """Where ``value`` sits on the fixed log axis 1e-7 … 1, as 0 … 1 (0 for zero)."""
    import math

    if value <= 0:
        return 0.0
    return max(0.0, min(1.0, (math.log10(value) - LOG_FLOOR) / (LOG_CEIL - LOG_FLOOR)))


def bar(value: float) -> str:
    """One block character for ``value`` on the fixed log axis; exactly zero is ``·``."""
    if value <= 0:
        return "·"
    return BARS[max(1, round(log_fraction(value) * (len(BARS) - 1)))]


def shorten_path(path: str, width: int) -> str:
    """A path cut from the left with ``…`` only when it is wider than ``width`` (its end, the
    file name, is what tells files apart)."""
    if len(path) <= width:
        return path
    return "…" + path[-max(1, width - 1) :]
