"""The loyalty service: points ledger, membership tiers, coupons and paid membership."""
