"""Layer 4, the strategies: each subpackage declares STRATEGY (syntfer.core.strategy) and keeps its private helpers; no strategy imports another."""
