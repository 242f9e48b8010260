"""Metrics for Prometheus: figures workers and trainers keep in Redis, and the collector that
renders them, with counts from Postgres, at scrape time."""
