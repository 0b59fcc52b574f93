"""`python -m services.feedback`: run the feedback service until SIGTERM."""

from dreamforge.runtime import service_main
from services.feedback.main import build
from services.feedback.settings import FeedbackSettings

service_main("feedback", FeedbackSettings(), build)
