"""`python -m services.inference`: run the inference service until SIGTERM."""

from dreamforge.runtime import service_main
from services.inference.main import build
from services.inference.settings import InferenceSettings

service_main("inference", InferenceSettings(), build)
