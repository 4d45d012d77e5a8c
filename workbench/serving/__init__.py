"""Serving the registered model: batch scoring, a web service and a stream consumer.

- :mod:`~workbench.serving.signature`: the model's input columns and the one scoring contract
  (``conform``) that batch, web and stream share.
- :mod:`~workbench.serving.model_loader` and ``fast_path``: load a version by alias; the compiled path.
- :mod:`~workbench.serving.batch`: score a file in chunks; :mod:`~workbench.serving.web`, ``web_input``
  and ``web_metrics``: the FastAPI app, its body checks and its counters; :mod:`~workbench.serving.stream`,
  ``stream_keys``, ``nats_transport``, ``nats_server``, ``transport``: the NATS JetStream consumer.
- :mod:`~workbench.serving.rollout`: a running rollout in a web or stream process (the challenger
  loaded beside the champion, shadow scoring off the response path, sticky canary routing, counts).
- :mod:`~workbench.serving.tokens`: web deployments' bearer tokens (generated, stored only as a hash).
- :mod:`~workbench.serving.deployments`: deployment records, their declared params, start and stop.
- :mod:`~workbench.serving.devops` and ``sampler``: DevOps metrics of the serving processes.

Import the sub-module you need; this package imports none of them (nor mlflow, fastapi or nats).
"""

__all__ = [
    "batch",
    "deployments",
    "devops",
    "fast_path",
    "model_loader",
    "nats_server",
    "nats_transport",
    "rollout",
    "sampler",
    "signature",
    "stream",
    "stream_keys",
    "tokens",
    "transport",
    "web",
    "web_input",
    "web_metrics",
]
