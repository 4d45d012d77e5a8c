"""Serving the registered model: batch scoring, a web service and a stream consumer."""
