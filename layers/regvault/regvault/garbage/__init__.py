"""Garbage collection that cannot lose an image: mark from every tag's closure (index children and OCI
referrers included), sweep by delete markers only, keep a run record to undo it."""
