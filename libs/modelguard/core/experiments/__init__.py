"""A/B experiments: statistics, bookkeeping, analysis and bandit allocation (pure)."""
