"""Media uploads on the worker during a live call (the SDK's `uploadMedia`).

    POST <worker base>/media/upload?call_id=<id>   multipart: file, reason, message
        → 200 {"media_id", "url", "content_type", "size"}
    GET  /media/{media_id}                         → the file (the unguessable id is the capability)

Like the worker URL, the live call's id is the capability: the upload is accepted only while that call is
connected to this worker. After the upload the client sends `client_media_update` on the data channel and
the agent reacts (agent_runtime/client_events.py).

Errors: no/unknown call → 404 CALL_NOT_FOUND; call not live here → 410 CALL_ENDED; over
`settings.max_upload_bytes` → 413 PAYLOAD_TOO_LARGE; over the call's upload budget
(`settings.max_uploads_per_call` files, `settings.max_upload_bytes_per_call` bytes in all) → 413
UPLOAD_QUOTA_EXCEEDED, nothing written (413, not 429: waiting does not help, the budget is the call's);
not multipart / no `file` / no `reason` → 400 VALIDATION_ERROR; a type the bytes are not, or not accepted →
415 UNSUPPORTED_MEDIA_TYPE. Each refusal of a live call's upload is counted in `talkwire_refusals_total`.

Files are served as downloads that a browser never renders from the API's origin: `Content-Disposition:
attachment` (RFC 6266, the name also RFC 5987-encoded), `X-Content-Type-Options: nosniff` and a
`Content-Security-Policy` that allows nothing and sandboxes the document.
"""
from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route
from starlette.types import Message

from control_api.errors import ApiError
from control_api.media_store import EXTENSIONS, MediaItem, MediaStore, UploadBudget, sniff
from control_api.metrics import Metrics
from control_api.storage import calls as call_store

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the text fields, beyond the file itself
MAX_TEXT_FIELD = 4000
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


class _TooLarge(Exception):
    pass


def store_of(request: Request) -> MediaStore:
    store: MediaStore = request.app.state.runtime.media
    return store


def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.runtime.metrics
    return metrics


def content_disposition(item: MediaItem) -> str:
    """`attachment` with the stored (already sanitised) name, plain and RFC 5987-encoded."""
    name = item.filename or f"{item.media_id}.{EXTENSIONS.get(item.content_type, 'bin')}"
    plain = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


async def upload(request: Request) -> JSONResponse:
    try:
        return await _upload(request)
    except ApiError as exc:
        if exc.code in _REFUSAL_REASONS:
            metrics_of(request).refused(_REFUSAL_REASONS[exc.code])
        raise


_REFUSAL_REASONS = {"PAYLOAD_TOO_LARGE": "over_quota", "UPLOAD_QUOTA_EXCEEDED": "over_quota",
                    "UNSUPPORTED_MEDIA_TYPE": "bad_message", "VALIDATION_ERROR": "bad_message"}


async def _upload(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    call_id = request.query_params.get("call_id") or ""
    if not call_id:
        raise ApiError(404, "CALL_NOT_FOUND", "call_id is required: POST /media/upload?call_id=<call id>")
    session = runtime.calls.get(call_id)
    if session is None:
        call = await call_store.get_call(runtime.db, call_id) if len(call_id) <= 64 else None
        if call is None:
            raise ApiError(404, "CALL_NOT_FOUND", "No such call.")
        raise ApiError(410, "CALL_ENDED", "Uploads are accepted only during the live call.")
    settings = runtime.settings
    budget = UploadBudget(settings.max_uploads_per_call, settings.max_upload_bytes_per_call)
    store = store_of(request)
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"The file is larger than {limit} bytes.")
    refusal = store.over_budget(call_id, 0, budget)  # no files left: refused before the body is read
    if refusal is not None:
        raise ApiError(413, "UPLOAD_QUOTA_EXCEEDED", refusal)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "VALIDATION_ERROR", "body: expected multipart/form-data with file, reason, message")

    # Count what arrives, so a body without Content-Length cannot exceed the limit either.
    received = 0
    receive = request.receive

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit + FORM_OVERHEAD:
            raise _TooLarge
        return message

    counted_request = Request(request.scope, counted)
    try:
        form = await counted_request.form(max_files=1, max_fields=10)
    except _TooLarge:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"The file is larger than {limit} bytes.") from None
    except Exception as exc:  # python-multipart's parse errors
        raise ApiError(400, "VALIDATION_ERROR", f"body: not a valid multipart form ({exc})") from None
    try:
        file = form.get("file")
        reason = form.get("reason")
        message = form.get("message") or ""
        if file is None or isinstance(file, str):
            raise ApiError(400, "VALIDATION_ERROR", "file: a file part is required")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError(400, "VALIDATION_ERROR", "reason: required (a routing category such as 'kyc_document')")
        if not isinstance(message, str) or len(message) > MAX_TEXT_FIELD or len(reason) > 200:
            raise ApiError(400, "VALIDATION_ERROR", "message/reason: text too long")
        data = await file.read()
        if len(data) > limit:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"The file is larger than {limit} bytes.")
        content_type = sniff(data, file.content_type or "", file.filename or "")
        if content_type is None:
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                           "Accepted: JPEG, PNG, GIF, WEBP, BMP, PDF, text/plain and text/csv (checked by content).")
        refusal = store.reserve(call_id, len(data), budget)
        if refusal is not None:
            raise ApiError(413, "UPLOAD_QUOTA_EXCEEDED", refusal)
        try:
            item = await store.save(call_id=call_id, data=data, content_type=content_type,
                                    filename=file.filename or "", reason=reason.strip(), message=message)
        except BaseException:
            store.release(call_id, len(data))
            raise
    finally:
        await form.close()
    url = f"{runtime.settings.base_url}/media/{item.media_id}"
    return JSONResponse({"media_id": item.media_id, "url": url, "content_type": item.content_type,
                         "size": item.size})


async def download(request: Request) -> FileResponse:
    item = await store_of(request).get(request.path_params["media_id"])
    if item is None:
        raise ApiError(404, "MEDIA_NOT_FOUND", "No such media.")
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(item)}
    return FileResponse(item.path, media_type=item.content_type, headers=headers)


routes = [
    Route("/media/upload", upload, methods=["POST"]),
    Route("/media/{media_id}", download, methods=["GET"]),
]
