"""Reconciliation: per-order matching, settlement batches, thresholds, intake health, reports."""
