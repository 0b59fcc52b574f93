"""Image input: decoding, limits and the error messages users see.

Used by the gateway (to answer 400 before anything is queued) and by the inference
service (which never trusts its callers). Accepted: JPEG, PNG and WebP, as raw bytes,
base64, or a `data:image/...;base64,` URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: Explicit, documented limits (README "Limits"); overridable per call.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 16_000_000          # e.g. 4000 x 4000
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?P<params>(;[\w=.-]+)*?);base64,(?P<data>.*)$", re.DOTALL)


class ImageError(ValueError):
    """An image the caller must fix; the message says how."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image        # RGB
    sha256: str               # of the encoded bytes: the image reference kept with outputs
    format: str
    size_bytes: int


def bytes_from_data_url_or_base64(value: str) -> bytes:
    """Bytes of a `data:` URL or of plain base64 text."""
    text = value.strip()
    if not text:
        raise ImageError("image is empty: send a data URL (data:image/png;base64,...) or base64 bytes")
    match = _DATA_URL.match(text)
    if text.startswith("data:") and not match:
        raise ImageError("image data URL must look like data:image/<png|jpeg|webp>;base64,<data>")
    if text.startswith(("http://", "https://")):
        raise ImageError("image URLs are not fetched: send the image itself as a data URL or base64")
    payload = match.group("data") if match else text
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 8:
        raise ImageError(f"image is larger than the {MAX_IMAGE_BYTES // (1024 * 1024)} MiB limit")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image is not valid base64") from None


def header_pixels(data: bytes) -> int | None:
    """Width times height as the image's header states it, without decoding; None when unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    return width * height


def decode_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode and check an encoded image; raise ImageError with a fix-it message."""
    if not data:
        raise ImageError("image is empty")
    if len(data) > max_bytes:
        mib = max_bytes / (1024 * 1024)
        raise ImageError(f"image is {len(data)} bytes; the limit is {max_bytes} bytes ({mib:g} MiB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            width, height = probe.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError("image could not be decoded: send a JPEG, PNG or WebP file") from None
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(f"image format {fmt or 'unknown'} is not supported: send JPEG, PNG or WebP")
    if width * height > max_pixels:
        raise ImageError(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels")
    if width < 1 or height < 1:
        raise ImageError("image has no pixels")
    try:
        image = probe.convert("RGB")
    except (OSError, ValueError):
        raise ImageError("image is truncated or corrupt: send the complete file") from None
    return DecodedImage(image=image, sha256=hashlib.sha256(data).hexdigest(), format=fmt, size_bytes=len(data))


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_ppm(image: Image.Image) -> bytes:
    """Uncompressed, lossless RGB bytes for process-to-process transport (the Triton runtime): PPM
    writes in 0.08 ms and reads in 0.03 ms at 96x96, where PNG takes 2.4 ms and 0.2 ms; on localhost
    the bytes are free and the CPU is not."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PPM")
    return buffer.getvalue()


def to_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode()
