"""The transparency report over the verified mirror (the same counts as ``comity audit report``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from comity.audit.errors import AuditError
from comity.audit.events import Event, decode_event
from comity.sdk.console.mirror import Mirror, Withheld
from comity.sdk.transparency import TransparencyReport, build_report

__all__ = ["mirror_report", "offence_classifier"]


def offence_classifier(countries: Iterable[str], bundles: Iterable[str]) -> Callable[[str], str]:
    """Offence code → class, from the offence catalogues of ``bundles`` for the federation's countries."""
    # Imported here: the SDK does not depend on the policy component at import time.
    from comity.policy.bundle import PolicyBundle, bundle_path

    catalogues = [PolicyBundle.load(bundle_path(name)).catalogue for name in bundles]
    wanted = sorted(set(countries))

    def classify(code: str) -> str:
        for catalogue in catalogues:
            for country in wanted:
                offence = catalogue.lookup(country, code)
                if offence is not None:
                    return offence.category
        return "UNKNOWN"

    return classify


def _events(mirror: Mirror) -> Iterator[Event]:
    for _idx, _columns, data, _rules in mirror.iter_stored(mirror.head().size):
        if isinstance(data, Withheld):
            continue  # another agreement's entry: not this country's to count
        try:
            yield decode_event(data)
        except AuditError:
            continue


def mirror_report(mirror: Mirror, offence_class: Callable[[str], str]) -> TransparencyReport:
    """Aggregate counts over every verified entry."""
    return build_report(_events(mirror), offence_class=offence_class)
