"""Hiragana and their romaji (Hepburn), for class names that must stay readable without a CJK font.

    romaji("お")          # "o"
    romaji("ゃ")          # "xya"  (small kana keep an x, so "ゃ" and "や" stay apart)
    to_romaji_labels(["お", "き", "3"])   # ["o", "ki", "3"]  (anything else is kept as it is)

`SMALL_KANA` are the kana ETL8 has and ETL9 lacks: dropping them from ETL8's hiragana leaves the
71-class set of ETL9 (`ETL9_HIRAGANA`) that the handwritten-kana tutorial trained on.
"""

_BASIC = (
    "あa いi うu えe おo かka きki くku けke こko さsa しshi すsu せse そso たta ちchi つtsu てte とto "
    "なna にni ぬnu ねne のno はha ひhi ふfu へhe ほho まma みmi むmu めme もmo やya ゆyu よyo "
    "らra りri るru れre ろro わwa ゐwi ゑwe をwo んn"
)
_VOICED = (
    "がga ぎgi ぐgu げge ごgo ざza じji ずzu ぜze ぞzo だda ぢdji づdzu でde どdo "
    "ばba びbi ぶbu べbe ぼbo ぱpa ぴpi ぷpu ぺpe ぽpo"
)
_SMALL = "ぁxa ぃxi ぅxu ぇxe ぉxo っxtsu ゃxya ゅxyu ょxyo ゎxwa ゔvu ゝiteration ゞviteration"


def _pairs(text):
    return {item[0]: item[1:] for item in text.split()}


ROMAJI = {**_pairs(_BASIC), **_pairs(_VOICED), **_pairs(_SMALL)}
SMALL_KANA = frozenset("ぁぃぅぇぉっゃゅょゎ")
# ETL9's 71 hiragana: the 46 of the gojūon with を and ん (no ゐ ゑ), and the 25 voiced/semi-voiced
ETL9_HIRAGANA = tuple(sorted(
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "がぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽ"))


def is_hiragana(text: str) -> bool:
    return len(text) == 1 and "\u3041" <= text <= "\u309f"


def romaji(text: str) -> str:
    """The romaji of one kana; any other label comes back unchanged."""
    return ROMAJI.get(text, text)


def to_romaji_labels(labels):
    return [romaji(label) for label in labels]
