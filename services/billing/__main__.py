"""`python -m services.billing`: run the billing service until SIGTERM."""

from dreamforge.runtime import service_main
from services.billing.main import build
from services.billing.settings import BillingSettings

service_main("billing", BillingSettings(), build)
