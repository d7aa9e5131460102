"""The recommend service: catalogue, interactions, recommendation models, low-latency serving, A/B experiments and offline evaluation."""
