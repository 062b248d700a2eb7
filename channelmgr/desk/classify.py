"""Special requests in the guests' own words (Chinese and English), sorted into kinds.

Plain substring matching on lower-cased text, no regular expressions: bounded work for any
input (a request is cut at MAX_TEXT characters). The text is kept as written; the kind is
only where the words allow, else ``other``.
"""

from __future__ import annotations

MAX_TEXT = 2000
MAX_ITEMS = 20

KINDS = ("accessible", "non_smoking", "high_floor", "extra_bed", "cot", "dietary", "late_arrival", "other")

# checked in this order; a piece of text may name several kinds (each is its own request)
KEYWORDS: dict[str, tuple[str, ...]] = {
    "accessible": ("无障碍", "轮椅", "残疾", "accessib", "wheelchair", "disab", "mobility", "barrier-free",
                   "barrier free", "step-free", "step free", "walk-in shower", "roll-in"),
    "non_smoking": ("无烟", "禁烟", "不吸烟", "non-smoking", "non smoking", "nonsmoking", "no smoking",
                    "smoke-free", "smoke free", "no-smoking"),
    "high_floor": ("高楼层", "高层", "楼层高", "high floor", "higher floor", "upper floor", "top floor",
                   "high-floor"),
    "extra_bed": ("加床", "额外床", "extra bed", "rollaway", "roll-away", "additional bed", "sofa bed"),
    "cot": ("婴儿床", "儿童床", "宝宝床", "crib", "baby bed", "baby cot"),
    "dietary": ("餐饮", "素食", "清真", "过敏", "忌口", "无麸质", "dietary", "diet", "vegetarian", "vegan",
                "halal", "kosher", "allerg", "gluten", "lactose", "nut-free", "nut free"),
    "late_arrival": ("晚到", "晚抵", "晚点到", "深夜到", "延迟入住", "推迟入住", "late arrival", "arrive late",
                     "arriving late", "late check-in", "late checkin", "late check in", "arrive after",
                     "arriving after"),
}

_SEPARATORS = "，,;；、\n\r。|/"


def pieces(text: str | None) -> list[tuple[str, str]]:
    """The request cut at commas, semicolons, full stops and new lines: [(separator before, piece)]."""
    if not text:
        return []
    text = text[:MAX_TEXT]
    out: list[tuple[str, str]] = []
    cur: list[str] = []
    sep = ""
    for ch in text:
        if ch in _SEPARATORS:
            if "".join(cur).strip():
                out.append((sep, "".join(cur).strip()))
            cur = []
            sep = ch
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append((sep, "".join(cur).strip()))
    return out[:MAX_ITEMS * 3]


def kinds_of(piece: str) -> list[str]:
    low = piece.lower()
    found = [k for k, words in KEYWORDS.items() if any(w in low for w in words)]
    if "cot" not in found and ("cot" in _words(low) or "cots" in _words(low)):
        found.insert(list(KEYWORDS).index("cot") if len(found) >= list(KEYWORDS).index("cot") else len(found),
                     "cot")  # the word "cot", not "cottage" or "Scotland"
    return found or ["other"]


def _words(low: str) -> set[str]:
    out, cur = set(), []
    for ch in low:
        if "a" <= ch <= "z":
            cur.append(ch)
        elif cur:
            out.add("".join(cur))
            cur = []
    if cur:
        out.add("".join(cur))
    return out


def classify(text: str | None) -> list[tuple[str, str]]:
    """[(kind, its words)]: one per kind a piece names, in the text's order. A piece that
    names no kind stays with the piece before it ("晚到，约23:30入住" is one late arrival);
    the pieces before the first kind are one ``other`` request."""
    groups: list[tuple[list[str], str]] = []  # (kinds, text)
    for sep, p in pieces(text):
        kinds = kinds_of(p)
        if groups and (kinds == ["other"] or kinds == groups[-1][0]):  # "素食，对花生过敏": one dietary request
            ks, t = groups[-1]
            groups[-1] = (ks, t + (sep if sep not in "\n\r" else " ") + (" " if sep in ",;." else "") + p)
        else:
            groups.append((kinds, p))
    out: list[tuple[str, str]] = []
    for kinds, t in groups:
        for k in kinds:
            if (k, t) not in out:
                out.append((k, t))
    return out[:MAX_ITEMS]
