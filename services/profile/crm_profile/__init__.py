"""The profile service: customers, identities and merging, consent, tags, behaviour and order intake, timeline, GDPR export and erasure."""
