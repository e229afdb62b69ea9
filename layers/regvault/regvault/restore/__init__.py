"""Restore: targets (digest, time, undo), the planner (which versions to copy forward), the copy-forward
executor, and tag history. Never deletes or overwrites an object version.
"""
