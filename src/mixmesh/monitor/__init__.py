"""Monitoring: what each model evaluation cost, kept across runs, and what it suggests.

- ``records``: the figures captured per model evaluation and per function;
- ``capture``: collects them while SQLMesh evaluates models;
- ``store``: keeps them (a local DuckDB file by default), append-only;
- ``stats``: means, p95, trends and recommendations; ``report``: the HTML page;
- ``export``: Prometheus text and OpenTelemetry metrics.
"""
