"""Readable cluster labels from how a cluster differs from the whole population."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Feature -> (word when the cluster is above the overall median, word when below), in the
#: order words appear in a label (spend, frequency and recency first: the RFM view).
WORDS: dict[str, tuple[str, str]] = {
    "monetary_minor": ("high spend", "low spend"),
    "frequency": ("frequent", "infrequent"),
    "recency_days": ("lapsed", "recent"),
    "average_order_minor": ("big baskets", "small baskets"),
    "category_breadth": ("broad range", "narrow range"),
    "tenure_days": ("long-standing", "new"),
    "engagement": ("engaged", "disengaged"),
}
#: A difference (in standard deviations of the log-scaled feature) that earns a word.
NOTABLE = 0.5
#: Words in a label at most (more only when needed to tell two clusters apart).
MAX_WORDS = 3
SEPARATOR = " · "


def _terms(difference: Mapping[str, float]) -> list[str]:
    """The cluster's words: its notable features in :data:`WORDS` order, then the others by
    how much they differ (used only to tell two clusters apart)."""
    notable = [f for f in WORDS if abs(difference[f]) >= NOTABLE]
    rest = sorted(
        (f for f in WORDS if f not in notable),
        key=lambda f: (-abs(difference[f]), list(WORDS).index(f)),
    )
    return [WORDS[f][0] if difference[f] > 0 else WORDS[f][1] for f in notable + rest]


def _notable(difference: Mapping[str, float]) -> int:
    return sum(1 for f in WORDS if abs(difference[f]) >= NOTABLE)


def make_labels(differences: Sequence[Mapping[str, float]]) -> list[str]:
    """One label per cluster, unique within the run.

    A label names up to three features on which the cluster's median differs from the overall
    median by at least half a standard deviation of the log-scaled feature (spend, frequency,
    recency first), e.g. "high spend · frequent · recent"; "typical" when none does. Clusters whose labels collide
    get further words (in order of their difference) and, if still equal, a number.
    """
    terms = [_terms(d) for d in differences]
    sizes = [min(MAX_WORDS, _notable(d)) for d in differences]

    def label(i: int, words: int) -> str:
        return SEPARATOR.join(terms[i][:words]) if words else "typical"

    labels = [label(i, n) for i, n in enumerate(sizes)]
    for text in dict.fromkeys(labels):
        group = [i for i, other in enumerate(labels) if other == text]
        if len(group) < 2:
            continue
        others = {other for i, other in enumerate(labels) if i not in group}
        for words in range(1, len(WORDS) + 1):
            longer = [label(i, max(sizes[i], words)) for i in group]
            if len(set(longer)) == len(group) and not others & set(longer):
                for i, new in zip(group, longer, strict=True):
                    labels[i] = new
                break
    seen: dict[str, int] = {}
    unique = []
    for text in labels:
        seen[text] = seen.get(text, 0) + 1
        unique.append(text if seen[text] == 1 else f"{text} ({seen[text]})")
    return unique
