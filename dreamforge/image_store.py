"""Served images, kept so a rating's `image_ref` can be turned back into the image (e.g. by the trainer).

Content-addressed under `$DREAMFORGE_HOME/images/<tenant>/<sha256[:2]>/<sha256>`: the reference
every output carries is the sha256 of the image's encoded bytes, so writing the same image twice is
a no-op, and the file's name proves its content. Per-tenant folders make a tenant's deletion and
retention purge a matter of that tenant's folder alone.

    from dreamforge.image_store import load_ref
    image = load_ref(event.image_ref, event.meta.tenant_id)        # a PIL image (RGB)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from dreamforge.images import decode_image
from dreamforge.settings import PlatformSettings

_SHA = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> ImageStore:
        return cls(PlatformSettings().home / "images")

    def path(self, tenant_id: str, ref: str) -> Path:
        if not _TENANT.match(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r} is not valid")
        if not _SHA.match(ref):
            raise ValueError(f"image ref {ref!r} is not a sha256 hex digest")
        return self.root / tenant_id / ref[:2] / ref

    def save(self, tenant_id: str, data: bytes) -> str:
        """Keep `data` (atomically: a crash leaves no partial file); returns its ref."""
        ref = hashlib.sha256(data).hexdigest()
        path = self.path(tenant_id, ref)
        if path.exists():
            os.utime(path)  # retention counts from the last time the image was served
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return ref

    def load_bytes(self, tenant_id: str, ref: str) -> bytes:
        try:
            return self.path(tenant_id, ref).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no stored image {ref} for tenant {tenant_id} (purged, deleted or never served)") from None

    def load(self, tenant_id: str, ref: str) -> Image.Image:
        return decode_image(self.load_bytes(tenant_id, ref)).image

    def delete_tenant(self, tenant_id: str) -> int:
        """Remove every image of `tenant_id`; returns how many there were."""
        folder = self.path(tenant_id, "0" * 64).parent.parent
        n = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return n

    def purge(self, tenant_id: str, older_than_s: float) -> int:
        """Remove the tenant's images not served for `older_than_s` seconds; returns how many."""
        folder = self.path(tenant_id, "0" * 64).parent.parent
        cutoff, n = time.time() - older_than_s, 0
        for p in folder.rglob("*") if folder.exists() else ():
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                n += 1
        return n


def load_ref(ref: str, tenant_id: str, root: Path | None = None) -> Image.Image:
    """The image an output's `image_ref` names (RGB), from this installation's image store."""
    store = ImageStore(root) if root is not None else ImageStore.default()
    return store.load(tenant_id, ref)
