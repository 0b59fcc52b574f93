"""Billing: the exactly-once priced usage ledger, plans, reports, quotas and Stripe metering."""
