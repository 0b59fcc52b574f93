"""Small test images as the skill routes take them."""

from __future__ import annotations

import base64
import io

from PIL import Image


def encoded(fmt: str = "PNG", size: tuple[int, int] = (32, 24), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(fmt: str = "PNG", size: tuple[int, int] = (32, 24), colour: str = "red") -> str:
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return f"data:{mime};base64," + base64.b64encode(encoded(fmt, size, colour)).decode()


def plain_base64(fmt: str = "JPEG") -> str:
    return base64.b64encode(encoded(fmt)).decode()


PNG = data_url()
