"""`python -m services.gateway`: run the gateway until SIGTERM."""

from dreamforge.runtime import service_main
from services.gateway.main import build
from services.gateway.settings import GatewaySettings

service_main("gateway", GatewaySettings(), build)
