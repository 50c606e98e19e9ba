"""The hand-written Prometheus exposition reads as prometheus_client's own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hamlet.host.exposition import Family, render

NAMES = ["plain.test", 'q"uote\\d.test', "new\nline.test"]


class _Reference:
    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily("x_requests", "Doc \\ with\nbreaks", labels=["server_name"])
        gauge = GaugeMetricFamily("x_size", "", labels=["name", "server_name"])
        histogram = HistogramMetricFamily("x_time", "sec", labels=["server_name", "code"])
        for i, name in enumerate(NAMES):
            counter.add_metric([name], i)
            gauge.add_metric(["cache", name], 1e20 + i)
            histogram.add_metric([name, "200"], [("0.005", 1.0), ("+Inf", 3.0 + i)], 0.25)
        yield from (counter, gauge, histogram)


def test_the_text_is_generate_latests() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference())
    counter = Family("x_requests", "counter", "Doc \\ with\nbreaks")
    gauge = Family("x_size", "gauge", "")
    histogram = Family("x_time", "histogram", "sec")
    chunks = [
        [
            counter.sample([("server_name", name)], i),
            gauge.sample([("name", "cache"), ("server_name", name)], 1e20 + i),
            histogram.histogram(
                [("server_name", name), ("code", "200")], [("0.005", 1.0)], 3.0 + i, 0.25
            ),
        ]
        for i, name in enumerate(NAMES)
    ]
    assert render([counter, gauge, histogram], chunks) == generate_latest(registry)


def test_values_are_written_as_prometheus_client_writes_them() -> None:
    from prometheus_client.utils import floatToGoString

    from hamlet.host.exposition import value_text

    values = [0, 1, -1, 0.25, 3, 999999.9, 1234567.0, 1e7, 123456789.125, 1e15, 1.5e15, 1e16]
    values += [1.5e16, 1e20 + 1, 1e-7, -1234567.0, float("inf"), float("-inf"), float("nan")]
    for value in values:
        assert value_text(value) == floatToGoString(value), value
