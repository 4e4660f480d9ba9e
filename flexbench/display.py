"""Small presentation helpers shared by the terminal and the site."""

from __future__ import annotations

import re
from functools import lru_cache

_SMALL_WORDS = {"and", "of", "the", "for", "in", "on", "at", "upon"}
_KEEP_UPPER = {"NHS", "UK", "ICB", "ICS", "FT", "CSU"}


def trust_name(name) -> str:
    """An ODS name (upper case) in the case people write it: "Guy's and St Thomas' NHS
    Foundation Trust". Text that is not all upper case is left as published."""
    if not isinstance(name, str) or not name:
        return ""
    return _written_case(name)


@lru_cache(maxsize=8192)
def _written_case(name: str) -> str:
    """:func:`trust_name` of a text, kept (the site names each trust on many pages)."""
    if name != name.upper():
        return name
    words = []
    for i, word in enumerate(name.split(" ")):
        if word in _KEEP_UPPER:
            words.append(word)
        elif i > 0 and word.lower() in _SMALL_WORDS:
            words.append(word.lower())
        else:
            words.append(re.sub(r"(^|[-(/'])([a-z])", lambda m: m[1] + m[2].upper(), word.lower()))
    return " ".join(words).replace("'S ", "'s ")
