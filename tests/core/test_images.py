"""Image decoding and limits: every bad input gets an ImageError that says what to fix."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from dreamforge.images import (
    ImageError,
    bytes_from_data_url_or_base64,
    decode_image,
    encode_png,
    encode_ppm,
    to_data_url,
)
from dreamforge.world import get_sample


def png(w: int = 8, h: int = 8) -> bytes:
    return encode_png(Image.new("RGB", (w, h), (200, 10, 10)))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA" if fmt == "PNG" else "RGB", (5, 7), (1, 2, 3)).save(buffer, format=fmt)
    decoded = decode_image(buffer.getvalue())
    assert decoded.image.mode == "RGB" and decoded.image.size == (5, 7) and decoded.format == fmt
    assert len(decoded.sha256) == 64


def test_data_url_and_plain_base64_round_trip() -> None:
    image = Image.new("RGB", (3, 3), (0, 255, 0))
    assert decode_image(bytes_from_data_url_or_base64(to_data_url(image))).image.getpixel((1, 1)) == (0, 255, 0)
    assert bytes_from_data_url_or_base64(base64.b64encode(png()).decode()) == png()


@pytest.mark.parametrize(("value", "words"), [
    ("", "empty"),
    ("data:image/png;base64", "data URL must look like"),
    ("https://example.com/cat.png", "not fetched"),
    ("not base64 at all!!", "not valid base64"),
])
def test_bad_image_text_says_what_to_fix(value: str, words: str) -> None:
    with pytest.raises(ImageError, match=words):
        bytes_from_data_url_or_base64(value)


def test_limits_and_undecodable_bytes() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="could not be decoded"):
        decode_image(b"GIF89a not really")
    with pytest.raises(ImageError, match="limit is 100 bytes"):
        decode_image(png(64, 64), max_bytes=100)
    with pytest.raises(ImageError, match="the limit is 1000 pixels"):
        decode_image(png(40, 40), max_pixels=1000)
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(ImageError, match="GIF is not supported"):
        decode_image(gif.getvalue())
    with pytest.raises(ImageError, match=r"truncated|could not be decoded"):
        decode_image(png(64, 64)[:60])


def test_ppm_transport_keeps_every_pixel_and_is_not_a_user_format() -> None:
    """The Triton runtime's wire format: the backend must see the pixels the torch runtime sees."""
    image = get_sample("test", 3).image
    data = encode_ppm(image)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "RGB" and decoded.tobytes() == image.convert("RGB").tobytes()
    assert encode_ppm(image.convert("RGBA")) == data  # any mode travels as its RGB pixels
    with pytest.raises(ImageError, match="not supported"):
        decode_image(data)  # callers still send JPEG, PNG or WebP
