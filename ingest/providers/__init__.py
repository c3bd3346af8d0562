"""Webhook providers: each is one verifier and one mapper behind ``Provider`` (``provider.py``).

The endpoint (``ingest/webhook_endpoint.py``) routes a path to a provider and does the
rest the same way for all of them; the next provider is one module here, its mapping
table in ``shared/``, and one route.
"""
