"""Files the caller uploads during a live call (`POST /media/upload`), kept under `<data_dir>/media/<call_id>/`.

Each upload is `<media_id>.<ext>` plus `<media_id>.json` (its metadata), so `GET /media/{media_id}` works
after a restart too. Types are decided by the bytes, not the name: a file must *be* a JPEG/PNG/GIF/WEBP/
BMP/PDF (magic numbers), or UTF-8 text without NUL bytes declared as text/plain or text/csv (the upload
preset accepts those). Disk work runs in a thread.

Each call has an upload budget (a number of files and their total bytes, from the settings): `reserve()` takes
a file's share of it before anything is written, so a call over its budget writes nothing, and `release()`
gives the share back when the write fails. The tally lives in this process, where the live call is.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp", "image/bmp": "bmp",
    "application/pdf": "pdf", "text/plain": "txt", "text/csv": "csv",
}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_TALLIED_CALLS = 100_000  # calls whose upload tally is remembered; the least recently used go first


def sniff(data: bytes, declared_type: str = "", filename: str = "") -> str | None:
    """The content type the bytes really are, or None when they are none of the accepted kinds."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 26 and data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    declared = declared_type.split(";", 1)[0].strip().lower()
    name = filename.lower()
    wants_csv = declared == "text/csv" or name.endswith(".csv")
    wants_text = wants_csv or declared == "text/plain" or name.endswith(".txt")
    if wants_text and b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/csv" if wants_csv else "text/plain"
    return None


@dataclass(frozen=True, slots=True)
class UploadBudget:
    max_files: int
    max_bytes: int


@dataclass(slots=True)
class Usage:
    files: int = 0
    bytes: int = 0


@dataclass(slots=True)
class MediaItem:
    media_id: str
    call_id: str
    content_type: str
    filename: str
    size: int
    reason: str
    message: str
    path: str


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._items: dict[str, MediaItem] = {}
        self._usage: OrderedDict[str, Usage] = OrderedDict()

    def usage(self, call_id: str) -> Usage:
        usage = self._usage.get(call_id)
        return Usage(usage.files, usage.bytes) if usage is not None else Usage()

    def over_budget(self, call_id: str, size: int, budget: UploadBudget) -> str | None:
        """Why one more file of `size` bytes does not fit the call's budget, or None when it fits."""
        used = self._usage.get(call_id) or Usage()
        if used.files + 1 > budget.max_files:
            return f"This call has uploaded its {budget.max_files} files; no more are accepted."
        if used.bytes + size > budget.max_bytes:
            return (f"This call's uploads would exceed {budget.max_bytes} bytes in all "
                    f"({used.bytes} used); no more are accepted.")
        return None

    def reserve(self, call_id: str, size: int, budget: UploadBudget) -> str | None:
        """Take one file of `size` bytes from the call's budget; the refusal text when it does not fit."""
        refusal = self.over_budget(call_id, size, budget)
        if refusal is not None:
            return refusal
        used = self._usage.setdefault(call_id, Usage())
        self._usage.move_to_end(call_id)
        used.files += 1
        used.bytes += size
        while len(self._usage) > MAX_TALLIED_CALLS:
            self._usage.popitem(last=False)
        return None

    def release(self, call_id: str, size: int) -> None:
        used = self._usage.get(call_id)
        if used is not None:
            used.files = max(0, used.files - 1)
            used.bytes = max(0, used.bytes - size)

    async def save(self, *, call_id: str, data: bytes, content_type: str, filename: str, reason: str,
                   message: str) -> MediaItem:
        media_id = uuid.uuid4().hex
        folder = self.root / call_id
        path = folder / f"{media_id}.{EXTENSIONS[content_type]}"
        safe_name = _SAFE_NAME.sub("_", Path(filename or "").name)[:200]
        item = MediaItem(media_id, call_id, content_type, safe_name, len(data), reason, message, str(path))

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            (folder / f"{media_id}.json").write_text(json.dumps(asdict(item)))

        await asyncio.to_thread(write)
        self._items[media_id] = item
        return item

    async def get(self, media_id: str) -> MediaItem | None:
        if not re.fullmatch(r"[0-9a-f]{32}", media_id or ""):
            return None
        item = self._items.get(media_id)
        if item is not None:
            return item

        def find() -> MediaItem | None:
            for meta in self.root.glob(f"*/{media_id}.json"):
                return MediaItem(**json.loads(meta.read_text()))
            return None

        item = await asyncio.to_thread(find)
        if item is not None:
            self._items[media_id] = item
        return item

    async def read(self, item: MediaItem) -> bytes:
        return await asyncio.to_thread(Path(item.path).read_bytes)
