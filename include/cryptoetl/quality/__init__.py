"""Data health: the quality gate after every load, gap and freshness detection, and self-healing.

- ``rules``: the thresholds (``quality.json``, or ``CRYPTOETL_QUALITY_FILE``).
- ``checks``: set-based SQL checks on the interval a step just wrote (``python -m cryptoetl check``),
  recorded in ``data_quality_results``. A failed hard check fails the task and marks the interval bad.
- ``health``: the holes and stale tables of the last N days, and the backfill that fills each
  (``python -m cryptoetl health``, the ``data_health`` DAG).
- ``heal``: creates those backfills through Airflow's REST API, bounded, recorded in
  ``data_health_actions``.
- ``report``: the health report and the ``health`` step that the ``data_health`` DAG runs.
- ``coverage``: what the Data health page (``plugins/``) draws: rows present per table x day and per
  coin x day.

This package sits beside ``loaders``: it reads the warehouse and the step registry, never Airflow.
"""
