"""Delivery analytics: what each message counts for, and the histograms that merge.

Pure: no I/O, no store. The store keeps the rollups as events are committed
(`dlrhub/store/rollups.py`); the API, the CLI and the console read them. The
measures are defined once, in `dlrhub/analytics/facts.py`, and in
docs/analytics.md.
"""
