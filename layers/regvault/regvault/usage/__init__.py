"""What the registry stores and costs: totals, per repository (live, unique, shared, history-only), and
what a different recovery window would keep."""
