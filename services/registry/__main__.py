"""`python -m services.registry`: run the registry service until SIGTERM."""

from dreamforge.runtime import service_main
from services.registry.main import build
from services.registry.settings import RegistrySettings

service_main("registry", RegistrySettings(), build)
