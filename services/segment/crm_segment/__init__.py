"""The segment service: customer aggregates, RFM scores and groups, lifecycle, rule segments, clusters, churn risk and predicted CLV."""
