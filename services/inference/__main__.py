"""`python -m services.inference`: run the inference service until SIGTERM."""

from dreamforge.runtime import service_main
from dreamforge.settings import PlatformSettings
from services.inference.main import build

service_main("inference", PlatformSettings(), build)
