"""`python -m services.trainer`: run the trainer service until SIGTERM."""

from dreamforge.runtime import service_main
from dreamforge.settings import PlatformSettings
from services.trainer.main import build

service_main("trainer", PlatformSettings(), build)
