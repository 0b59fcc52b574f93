"""`python -m services.feedback`: run the feedback service until SIGTERM."""

from dreamforge.runtime import service_main
from dreamforge.settings import PlatformSettings
from services.feedback.main import build

service_main("feedback", PlatformSettings(), build)
