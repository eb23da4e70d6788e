"""TopUp Guard: an anti-risk stream processor for payment top-up pipelines."""
