"""Optional export of traces and logs to Azure Application Insights through OpenTelemetry.

Set ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (from the Azure portal, kept in the environment or a
secret store, never in code) and the ``tweet_sentiment`` logs and the service's spans are exported; BentoML
traces requests once the service's tracing samples them
(``BENTOML_CONFIG_OPTIONS="services.TweetSentiment.tracing.sample_rate=0.1"``: serve/internals.py leaves the
tracing middleware out otherwise). Without the connection string nothing is imported, configured or sent.
"""

import logging
from dataclasses import dataclass
from typing import Any

from tweet_sentiment.core.config import settings

LOGGER = "tweet_sentiment"


@dataclass(frozen=True)
class AzureExport:
    spans: Any  # BatchSpanProcessor
    logs: Any  # LoggerProvider

    def flush(self) -> None:
        self.spans.force_flush()
        self.logs.force_flush()


def configure_azure_monitor(connection_string: str | None = None) -> AzureExport | None:
    """Attach Azure Monitor exporters to the current tracer provider and the project's logger."""
    secret = settings().applicationinsights_connection_string
    connection_string = connection_string or (secret.get_secret_value() if secret else None)
    if not connection_string:
        return None
    # Only with a connection string: a server without one loads none of Azure's exporters.
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorTraceExporter
    from opentelemetry import trace
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # outside `bentoml serve`, nobody set one up yet
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    spans = BatchSpanProcessor(AzureMonitorTraceExporter(connection_string=connection_string))
    provider.add_span_processor(spans)

    from opentelemetry.sdk.resources import Resource

    logs = LoggerProvider(resource=Resource.create({"service.name": "tweet-sentiment"}))
    logs.add_log_record_processor(BatchLogRecordProcessor(AzureMonitorLogExporter(connection_string=connection_string)))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logs))
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    return AzureExport(spans, logs)
