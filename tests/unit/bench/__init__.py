"""Unit tests for the pure parts of the chaos harness (bench/chaos_plan.py, bench/chaos_check.py)."""
