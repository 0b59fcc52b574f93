"""`python -m services.trainer`: run the trainer service until SIGTERM."""

from dreamforge.runtime import service_main
from services.trainer.main import build
from services.trainer.settings import TrainerSettings

service_main("trainer", TrainerSettings(), build, spawns_children=True)  # its job workers
