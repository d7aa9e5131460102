"""Per-customer scores: order aggregates and RFM, lifecycle, churn and CLV, value score."""
