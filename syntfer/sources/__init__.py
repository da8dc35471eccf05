"""Layer 1, the data sources: the real datasets' readers and the procedural world."""
