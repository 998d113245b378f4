"""Alerts: rules from `[[alerts]]` evaluated every minute by one process at a time.

An alert opens when its rule's condition holds for a group and resolves when it no
longer does; each transition is kept (`dlrhub/store/alerts_sql.py`, `GET /v1/alerts`)
and written to the log as a `dlrhub.alert` event, so it reaches the sinks operators
already have. Rules: `settings.py`; evaluation: `evaluate.py`; the events: `events.py`.
"""
