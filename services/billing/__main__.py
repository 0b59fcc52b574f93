"""`python -m services.billing`: run the billing service until SIGTERM."""

from dreamforge.runtime import service_main
from dreamforge.settings import PlatformSettings
from services.billing.main import build

service_main("billing", PlatformSettings(), build)
