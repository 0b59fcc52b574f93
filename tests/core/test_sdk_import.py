"""The SDK is importable as the product documents it, without the services paying for it."""

from __future__ import annotations

import subprocess
import sys


def test_the_sdk_is_importable_from_the_package() -> None:
    from dreamforge import DreamForge, DreamForgeError
    from dreamforge.client import DreamForge as Client
    from dreamforge.client import DreamForgeError as ClientError

    assert DreamForge is Client and DreamForgeError is ClientError


def test_importing_the_shared_package_does_not_load_the_http_client() -> None:
    code = "import sys, dreamforge, dreamforge.settings; print('dreamforge.client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
