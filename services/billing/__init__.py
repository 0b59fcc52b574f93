"""Billing: the exactly-once usage ledger (pricing, reports and Stripe come with the billing issue)."""
