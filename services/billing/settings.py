"""Billing-only settings (Stripe, the meter-event flush, quota reconciliation), on top of the
platform's `DREAMFORGE_*` settings so one environment configures the whole process."""

from __future__ import annotations

from pydantic import Field

from dreamforge.settings import PlatformSettings


class BillingSettings(PlatformSettings):
    stripe_api_key: str = Field(
        default="", description="Stripe secret key (sk_live_... or sk_test_...); empty = usage is not sent to Stripe")
    stripe_api_base: str = Field(
        default="", description="Stripe API base URL; empty = https://api.stripe.com (a local Stripe-like server "
                                "in tests)")
    stripe_webhook_secret: str = Field(default="", description="Signing secret (whsec_...) of the webhook endpoint")
    stripe_meter_event_prefix: str = Field(
        default="dreamforge", description="Meter event names are `<prefix>_<skill>_images`")
    stripe_flush_s: float = Field(
        default=60.0, ge=0.0, description="A meter-event group collects billable images this long, then is sent")
    stripe_poll_s: float = Field(default=1.0, gt=0, description="How often the Stripe worker looks for work")
    stripe_retry_max_s: float = Field(default=300.0, gt=0, description="Longest back-off between Stripe retries")
    default_plan: str = Field(default="payg", description="Plan of a tenant that was never assigned one")
    quota_reconcile_s: float = Field(
        default=30.0, gt=0, description="How often the Redis quota counters are reset from the ledger")
