"""Labels in figures: kana and other non-Latin class names drawn as glyphs, never as tofu boxes.

    from konbu.inspect.fonts import label_font, display_labels
    font = label_font()                       # FontProperties of a CJK font, or None if none is installed
    names = display_labels(["お", "き"])      # ["お", "き"] with a CJK font, ["o", "ki"] without
    axes.set_title(names[0], fontproperties=font)

A CJK font comes from the system (Debian: `apt-get install fonts-noto-cjk`). Without one, kana
fall back to romaji (konbu.data.kana), and any other label the default font cannot draw is kept
only if every character has a glyph in it.
"""

import functools

from matplotlib import font_manager
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font

from ..data.kana import romaji

# In order of preference: Noto (Debian fonts-noto-cjk), then other common Japanese fonts
CJK_FAMILIES = ("Noto Sans CJK JP", "Noto Serif CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic",
                "TakaoGothic", "VL Gothic", "Droid Sans Fallback", "WenQuanYi Zen Hei")
_PROBE = "あお"   # a font that draws these draws the kana the datasets use


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset:
    return frozenset(FT2Font(path).get_charmap())


def _covers(path: str, text: str) -> bool:
    return all(ord(ch) in _charmap(path) or ch.isspace() for ch in text)


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """Path of an installed font that has kana glyphs, or None."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:   # findfont picks the regular weight of the family
            path = font_manager.findfont(FontProperties(family=family), fallback_to_default=False)
            if _covers(path, _PROBE):
                return path
    # matplotlib's font cache predates a font installed later: ask the system's font list directly
    for path in sorted(font_manager.findSystemFonts(), key=lambda p: ("Regular" not in p, p)):
        if "cjk" in path.lower() or "gothic" in path.lower():
            try:
                if _covers(path, _PROBE):
                    return path
            except (OSError, RuntimeError):
                continue
    return None


def label_font(size: float | None = None) -> FontProperties | None:
    """FontProperties for labels that may hold kana; None means matplotlib's default font."""
    path = cjk_font_path()
    if path is None:
        return None
    return FontProperties(fname=path, size=size)


def _default_font_path() -> str:
    return font_manager.findfont(FontProperties())


def display_label(label: str) -> str:
    """`label` as it can be drawn: itself when some font has every glyph, else its romaji."""
    label = str(label)
    path = cjk_font_path()
    if path and _covers(path, label):
        return label
    if _covers(_default_font_path(), label):
        return label
    return romaji(label) if len(label) == 1 else "".join(romaji(ch) for ch in label)


def display_labels(labels) -> list:
    return [display_label(label) for label in labels]
