"""Metrics: OpenTelemetry instruments, served in Prometheus's text format when a port is set.

Why Prometheus's pull format: Kubernetes scales inference on its requests in flight, read per pod
through the Prometheus Adapter (deploy/k8s/inference.yaml), and a scrape needs no collector in
between. Code makes its instruments with `meter(name)` wherever they belong; they cost nothing
until `configure_metrics` installs the SDK's provider, once per process (`runtime.service_main`).
`DREAMFORGE_METRICS_PORT` is per process: in Kubernetes and Compose every service has its own
network namespace and uses the same port; `dreamforge up` runs all of them on one host and
leaves it off.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource


def configure_metrics(service: str, port: int, host: str = "127.0.0.1") -> MeterProvider | None:
    """Serve this process's metrics at http://host:port/metrics (nothing when `port` is 0)."""
    if port <= 0:
        return None
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    start_http_server(port=port, addr=host)
    provider = MeterProvider(resource=Resource.create({"service.name": f"dreamforge-{service}"}),
                             metric_readers=[PrometheusMetricReader()])
    metrics.set_meter_provider(provider)
    return provider


def meter(name: str) -> metrics.Meter:
    """The meter of one component (e.g. "dreamforge.inference"); bound to the provider once it is installed."""
    return metrics.get_meter(name)
