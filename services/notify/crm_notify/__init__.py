"""The notify service: templates, channels, campaigns to segments, triggered journeys, consent and frequency rules, tracking and attribution."""
