"""Justification quality: is a text boilerplate? A pure function of the text and the bundle.

A text is compared with the bundle's boilerplate corpus (``justification.toml``) after
normalisation: lower case, split at anything that is not a letter or a digit, stop words and
single letters dropped, a plural or verb ending cut (``records`` and ``record``, ``identifying``
and ``identify`` count as one word), and the query's own case reference removed (a case number
is not a fact).

The measure is **token-set containment in the corpus**: the share of the text's distinct words
that occur anywhere in the corpus. It ignores word order, so reordering a boilerplate sentence
changes nothing; it does not depend on the text's length beyond the words it adds, so padding a
boilerplate text with a few words lowers its score only by their share, and words of several
boilerplate texts mixed together still count as boilerplate. Articulable facts are what no
corpus holds: dates, places, amounts, names, what was seen and by whom. The threshold
(``threshold_percent``) is tuned on the labelled set shipped beside the corpus
(``justification_cases.toml``); ``docs/policy.md`` records the rates it reaches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from comity.policy._toml import Table, parse_table
from comity.policy.errors import BundleError

__all__ = [
    "JustificationCase",
    "JustificationStandard",
    "LabelledRates",
    "LabelledSet",
    "content_words",
    "distinct_words",
]

_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}")
_NON_WORD = re.compile(r"[\W_]+")
_TOKEN = re.compile(r"[^\W_]+")
# Endings cut so that inflections of one word meet; longest first, and only when a stem of
# at least four letters remains (so "bus" or "news" stay whole).
_ENDINGS = ("ing", "ies", "ied", "ed", "es", "s")
_MIN_STEM = 4
# A labelled set smaller than this cannot tell a threshold from luck.
_MIN_CASES = 50


def distinct_words(text: str) -> int:
    """Distinct words of two or more letters (or numbers of two or more digits)."""
    return len({w.lower() for w in _WORD.findall(text)})


def _stem(word: str) -> str:
    if word.endswith(("ss", "us", "is")):  # address, status, analysis: not plurals
        return word
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            stem = word[: -len(ending)]
            return stem + "y" if ending in ("ies", "ied") else stem
    return word


def content_words(text: str, stop_words: frozenset[str], *, drop: Iterable[str] = ()) -> list[str]:
    """The words of ``text`` that can carry facts, in order, normalised.

    Lower case; split at anything that is not a letter or digit; stop words, single letters and
    the words in ``drop`` (already normalised) removed; endings cut. Numbers are kept, of any
    length: a date or an amount is a fact.
    """
    dropped = set(drop)
    out: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token in stop_words or (len(token) < 2 and not token.isdigit()):
            continue
        word = _stem(token)
        if word not in dropped:
            out.append(word)
    return out


def _normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


@dataclass(frozen=True, slots=True)
class JustificationStandard:
    """What makes a justification boilerplate (from the bundle's ``justification.toml``).

    Word-count minimums live in the JUSTIFICATION rule itself; this decides whether a text is
    boilerplate: too close to the corpus, holding a placeholder, or the same in both fields.
    """

    threshold_percent: int
    """A text whose share of corpus words (0–100) reaches this is boilerplate."""
    stop_words: frozenset[str]
    """Words that carry no fact (articles, pronouns, auxiliaries), dropped before comparing."""
    corpus: tuple[str, ...]
    """The boilerplate texts, as written in the bundle."""
    vocabulary: frozenset[str]
    """Every content word of the corpus, normalised."""
    placeholders: tuple[str, ...]
    """Fragments that mark an unfinished text anywhere in it (``"lorem ipsum"``, ``"tbd"``)."""
    reuse_percent: int
    """Estimated similarity (0–100) at which a text counts as reused from another case."""

    @classmethod
    def parse(cls, text: str, *, source: str) -> JustificationStandard:
        """Read ``justification.toml``.

        Raises:
            BundleError: naming a missing or mistyped field.
        """
        table = parse_table(text, source=source)
        stop_words = frozenset(w.lower() for w in table.texts("stop_words"))
        corpus = table.texts("boilerplate")
        std = cls(
            threshold_percent=_percent(table, "threshold_percent"),
            stop_words=stop_words,
            corpus=corpus,
            vocabulary=frozenset(w for t in corpus for w in content_words(t, stop_words)),
            placeholders=tuple(_normalise(p) for p in table.texts("placeholders")),
            reuse_percent=_percent(table, "reuse_percent"),
        )
        table.done()
        return std

    def words(self, text: str, *, case_reference: str = "") -> list[str]:
        """The content words of ``text`` (see :func:`content_words`), without the case reference's."""
        return content_words(text, self.stop_words, drop=content_words(case_reference, self.stop_words))

    def score(self, text: str, *, case_reference: str = "") -> int:
        """Percent (0–100) of the distinct content words of ``text`` that the corpus holds.

        A text with no content word at all scores 100: it states nothing.
        """
        words = set(self.words(text, case_reference=case_reference))
        if not words:
            return 100
        return (100 * len(words & self.vocabulary)) // len(words)

    def is_boilerplate(self, facts: str, link: str, *, case_reference: str = "") -> bool:
        """Whether either text is boilerplate, holds a placeholder, or both say the same."""
        for text in (facts, link):
            if self.score(text, case_reference=case_reference) >= self.threshold_percent:
                return True
        nf, nl = _normalise(facts), _normalise(link)
        if any(f" {p} " in f" {text} " for p in self.placeholders for text in (nf, nl)):
            return True
        return bool(nf) and nf == nl


def _percent(table: Table, key: str) -> int:
    value = table.integer(key, minimum=1)
    if value > 100:
        raise table.error(key, "must be a percentage from 1 to 100")
    return value


# ---------------------------------------------------------------------- the labelled set


@dataclass(frozen=True, slots=True)
class JustificationCase:
    """One labelled justification: both texts, and whether it is boilerplate."""

    facts: str
    link: str
    boilerplate: bool


@dataclass(frozen=True, slots=True)
class LabelledRates:
    """How a standard does on a labelled set, beside the counts the bundle records."""

    real: int
    boilerplate: int
    false_refusals: int
    """Real justifications called boilerplate."""
    false_passes: int
    """Boilerplate justifications let through."""
    recorded_false_refusals: int
    recorded_false_passes: int

    @property
    def false_refusal_percent(self) -> float:
        """False refusals as a percentage of the real justifications."""
        return 100 * self.false_refusals / self.real

    @property
    def false_pass_percent(self) -> float:
        """False passes as a percentage of the boilerplate justifications."""
        return 100 * self.false_passes / self.boilerplate

    @property
    def within_recorded(self) -> bool:
        """Whether neither count is worse than the recorded one."""
        return (
            self.false_refusals <= self.recorded_false_refusals
            and self.false_passes <= self.recorded_false_passes
        )


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """``justification_cases.toml``: labelled justifications and the error counts reached on them."""

    cases: tuple[JustificationCase, ...]
    recorded_false_refusals: int
    recorded_false_passes: int

    @classmethod
    def parse(cls, text: str, *, source: str) -> LabelledSet:
        """Read the labelled set.

        Raises:
            BundleError: naming a missing or mistyped field, or a set too small to tune on.
        """
        table = parse_table(text, source=source)
        recorded = table.table("recorded")
        refusals = recorded.integer("false_refusals")
        passes = recorded.integer("false_passes")
        recorded.done()
        cases: list[JustificationCase] = []
        for key, label in (("real", False), ("boilerplate", True)):
            items = table.tables(key)
            if len(items) < _MIN_CASES:
                raise table.error(key, f"holds {len(items)} cases; tune on at least {_MIN_CASES}")
            for item in items:
                cases.append(JustificationCase(item.text("facts"), item.text("link"), label))
                item.done()
        table.done()
        return cls(tuple(cases), refusals, passes)

    def check(self, standard: JustificationStandard) -> None:
        """Refuse ``standard`` when it gets more cases wrong than recorded.

        Raises:
            BundleError: with the counts reached and recorded.
        """
        rates = self.measure(standard)
        if not rates.within_recorded:
            raise BundleError(
                f"the boilerplate standard now makes {rates.false_refusals} false refusal(s) and "
                f"{rates.false_passes} false pass(es) on the labelled set; at most "
                f"{rates.recorded_false_refusals} and {rates.recorded_false_passes} are recorded",
                field="threshold_percent",
                source="justification.toml",
            )

    def measure(self, standard: JustificationStandard) -> LabelledRates:
        """Run ``standard`` over the cases."""
        real = [c for c in self.cases if not c.boilerplate]
        boilerplate = [c for c in self.cases if c.boilerplate]
        return LabelledRates(
            real=len(real),
            boilerplate=len(boilerplate),
            false_refusals=sum(standard.is_boilerplate(c.facts, c.link) for c in real),
            false_passes=sum(not standard.is_boilerplate(c.facts, c.link) for c in boilerplate),
            recorded_false_refusals=self.recorded_false_refusals,
            recorded_false_passes=self.recorded_false_passes,
        )
