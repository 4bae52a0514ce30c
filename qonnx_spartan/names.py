"""Legal, unique, non-reserved VHDL identifiers from whatever a model calls its nodes and tensors."""

from __future__ import annotations

import re
import unicodedata

# IEEE 1076-2008, 15.10 (reserved words), plus PSL keywords GHDL reserves in VHDL-2008 mode.
VHDL_RESERVED = frozenset(
    """abs access after alias all and architecture array assert assume assume_guarantee attribute begin
    block body buffer bus case component configuration constant context cover default disconnect downto
    else elsif end entity exit fairness file for force function generate generic group guarded if impure
    in inertial inout is label library linkage literal loop map mod nand new next nor not null of on open
    or others out package parameter port postponed procedure process property protected pure range record
    register reject release rem report restrict restrict_guarantee return rol ror select sequence severity
    shared signal sla sll sra srl strong subtype then to transport type unaffected units until use variable
    vmode vprop vunit wait when while with xnor xor""".split()
)

MAX_LENGTH = 40


def sanitize(name: str, fallback: str = "n") -> str:
    """A legal VHDL basic identifier close to `name`: ASCII letters, digits and single underscores,
    starting with a letter, not ending in an underscore, lower case, at most MAX_LENGTH characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not ident or not ident[0].isalpha():
        ident = f"{fallback}_{ident}".rstrip("_")
    ident = ident[:MAX_LENGTH].rstrip("_")
    if ident in VHDL_RESERVED:
        ident = f"{ident}_{fallback}"
    return ident


class Namer:
    """Hands out identifiers that are unique in one design (VHDL is case-insensitive; we emit lower case)."""

    def __init__(self, taken: set[str] | None = None):
        self._taken = set(taken or ())

    def __call__(self, name: str, fallback: str = "n") -> str:
        base = sanitize(name, fallback)
        ident, k = base, 1
        while ident in self._taken or ident in VHDL_RESERVED:
            k += 1
            ident = f"{base[: MAX_LENGTH - len(str(k)) - 1].rstrip('_')}_{k}"
        self._taken.add(ident)
        return ident


def comment_text(name: str, limit: int = 120) -> str:
    """`name` as text safe inside a one-line VHDL comment or string: printable ASCII, no quotes."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = "".join(c if c.isprintable() and c != '"' else "?" for c in ascii_name)
    return text[:limit] + ("..." if len(text) > limit else "")
