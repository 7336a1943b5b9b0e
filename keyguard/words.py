"""Words in messages: counted nouns ("1 store", "2 stores", never "1 files" or "store(s)"), and
outside text made safe to print."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1 (``many``: an irregular plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def shown(text: str) -> str:
    """``text`` for a terminal: control, format and undecodable characters escaped."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # an undecodable byte kept by os.fsdecode
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out)
