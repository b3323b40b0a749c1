"""Several servers' Prometheus text as one exposition, each sample labelled with its server."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


class _Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def merge_expositions(texts: dict[str, str], label: str = "replica") -> bytes:
    """{server: /metrics text} -> one text where every sample carries `label`="<server>".

    Samples of one family stay together under one HELP/TYPE, as the format requires.
    A text that does not parse is skipped (its server is reported unhealthy elsewhere).
    """
    merged: dict[str, Metric] = {}
    for server, text in sorted(texts.items()):
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            continue
        for family in families:
            out = merged.get(family.name)
            if out is None:
                out = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                out.samples.append(s._replace(labels={**s.labels, label: server}))
    return generate_latest(_Families(list(merged.values())))
