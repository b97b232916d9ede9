"""Digits trained with manual optimization (Lightning's "Manual Optimization" page)."""
