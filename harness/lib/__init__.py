"""Helpers for the etrnkit end-to-end harness and the benchmark drivers (thin glue only)."""
