"""What the caller's app tells the agent over the data channel, besides the tool protocol.

    client_context_update   {…fields} or {data: {…}}  → silent context for the LLM, no reply
    client_action_trigger   {action, data}             → cut the agent, answer the action now
    client_action_interrupt                            → cut the agent's speech (pending client tools cancelled)
    client_interrupt_audio                             → cut the audio only (pending client tools stay open)
    client_media_update     {media_id, url, reason, message} → the media handler for `reason`, then one reaction
    client_media_frame      {reason, image, width, height}   → the latest live frame per reason, for the next turn
    any other client_*                                 → recorded and given to the agent as an event

`ClientEvents.install(conversation)` registers the handlers; they run on the conversation's loop in order
with its other events. Records for the call timeline go to `on_record(kind, data)`.

Media handlers (the agent's, plain dicts: reason, route, webhook_url, webhook_headers, inject_as,
interrupt) route uploads by `reason`: `webhook` forwards the file as multipart (media, reason, message,
session_id) through the same address guard as server tools and injects the answer's `result_text`;
`vision` hands the image to the LLM as an OpenAI image content part. Without a handler the agent is told
that a file arrived. The agent reacts once per media_id: at once when it is idle or the handler interrupts,
else right after its current reply; a reply that waits on a tool (the upload preset) goes on with it.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from agent_runtime.conversation.messages import MessageHandler
from agent_runtime.tools.netguard import BlockedDestination, pin_url, tls_context
from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RecordSink = Callable[[str, dict[str, Any]], None]


class EventsHost(Protocol):
    """What ClientEvents needs of the conversation it is installed on (`agent_runtime.conversation.Conversation`)."""

    turn_extras: Callable[[], list[dict[str, Any]]] | None

    @property
    def waiting_on_tool(self) -> bool: ...
    @property
    def replying(self) -> bool: ...
    def register_handler(self, message_type: str, handler: MessageHandler) -> None: ...
    def set_fallback_handler(self, handler: MessageHandler | None) -> None: ...
    def add_context(self, message: dict[str, Any]) -> None: ...
    async def interrupt(self, reason: str, *, audio_only: bool = False) -> bool: ...
    async def respond(self, message: dict[str, Any] | None = None) -> None: ...
    def respond_after_reply(self, message: dict[str, Any]) -> None: ...
    def run_soon(self, fn: Callable[[], Awaitable[None]]) -> None: ...
    async def send(self, message: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class MediaFile:
    """An uploaded file as the worker stored it."""

    media_id: str
    content_type: str
    filename: str
    size: int
    data: bytes


MediaLoader = Callable[[str], Awaitable[MediaFile | None]]

VISION_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_VISION_BYTES = 20 * 1024 * 1024  # OpenAI's image limit; a larger image is announced like any file
FRAME_INTERVAL_S = 1.0  # at most one live frame per reason per second is kept
MAX_FRAME_BYTES = 2 * 1024 * 1024  # a base64 JPEG frame larger than this is dropped
MAX_RESULT_TEXT = 8000
WEBHOOK_TIMEOUT_S = 15.0


def _fields(message: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    """The payload of a client event: `data` (when an object) merged over the message's other fields."""
    out = {k: v for k, v in message.items() if k not in ("type", "data", *skip)}
    data = message.get("data")
    if isinstance(data, Mapping):
        out.update(data)
    elif data is not None:
        out["data"] = data
    return out


def _compact(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "), default=str)


class ClientEvents:
    def __init__(
        self,
        *,
        session_id: str,
        media_handlers: list[Mapping[str, Any]] | None = None,
        load_media: MediaLoader | None = None,
        on_record: RecordSink | None = None,
        allow_private_webhooks: bool = False,
        webhook_timeout: float = WEBHOOK_TIMEOUT_S,
        frame_interval: float = FRAME_INTERVAL_S,
        transport: httpx.AsyncBaseTransport | None = None,
        on_guard_refusal: Callable[[], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.on_guard_refusal = on_guard_refusal
        self.media_handlers = {str(h.get("reason")): dict(h) for h in media_handlers or []}
        self.load_media = load_media
        self.on_record = on_record
        self.allow_private_webhooks = allow_private_webhooks
        self.webhook_timeout = webhook_timeout
        self.frame_interval = frame_interval
        self.frames: dict[str, dict[str, Any]] = {}  # reason → latest live frame
        self._frame_at: dict[str, float] = {}
        self._seen_media: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http = httpx.AsyncClient(trust_env=False, transport=transport, follow_redirects=False,
                                       verify=tls_context(), headers={"User-Agent": "Talkwire-MediaWebhook/0.1"})
        self._conversation: EventsHost | None = None

    @property
    def conversation(self) -> EventsHost:
        assert self._conversation is not None, "install() the conversation first"
        return self._conversation

    def install(self, conversation: EventsHost) -> None:
        self._conversation = conversation
        for kind, handler in (
            ("client_context_update", self.on_context_update),
            ("client_action_trigger", self.on_action_trigger),
            ("client_action_interrupt", self.on_action_interrupt),
            ("client_interrupt_audio", self.on_interrupt_audio),
            ("client_media_update", self.on_media_update),
            ("client_media_frame", self.on_media_frame),
        ):
            conversation.register_handler(kind, handler)
        conversation.set_fallback_handler(self.on_other_event)
        conversation.turn_extras = self.frame_messages

    def replace_media_handlers(self, handlers: list[Mapping[str, Any]]) -> None:
        """agent_transfer: the new agent's handlers."""
        self.media_handlers = {str(h.get("reason")): dict(h) for h in handlers}

    async def aclose(self) -> None:
        await cancel_and_wait(list(self._tasks))
        await self._http.aclose()

    # ---- context, actions, interrupts -------------------------------------------------------------

    async def on_context_update(self, message: Mapping[str, Any]) -> None:
        data = _fields(message)
        context = {"role": "system",
                   "content": f"Context update from the user's app (take note; do not reply to it): {_compact(data)}"}
        self.conversation.add_context(context)
        # The exact message is kept, so a continued session can rebuild the LLM context from the timeline.
        self._record("context", {"data": data, "message": context})

    async def on_action_trigger(self, message: Mapping[str, Any]) -> None:
        action = str(message.get("action") or message.get("name") or "action")
        data = _fields(message, "action")
        self._record("action_trigger", {"action": action, "data": data})
        await self.conversation.respond({
            "role": "user",
            "content": f"[The user did something in the app — action {action!r}: {_compact(data)}. "
                       "Respond to it now.]"})

    async def on_action_interrupt(self, message: Mapping[str, Any]) -> None:
        cut = await self.conversation.interrupt("action_interrupt")
        self._record("interrupt", {"audio_only": False, "cut": cut})

    async def on_interrupt_audio(self, message: Mapping[str, Any]) -> None:
        cut = await self.conversation.interrupt("interrupt_audio", audio_only=True)
        self._record("interrupt", {"audio_only": True, "cut": cut})

    async def on_other_event(self, message: Mapping[str, Any]) -> None:
        kind = str(message.get("type"))
        data = _fields(message)
        context = {"role": "system", "content": f"Event from the user's app: {kind} {_compact(data)}"}
        self.conversation.add_context(context)
        self._record("client_event", {"type": kind, "data": data, "message": context})

    # ---- media ------------------------------------------------------------------------------------

    async def on_media_update(self, message: Mapping[str, Any]) -> None:
        media_id = str(message.get("media_id") or "")
        reason = str(message.get("reason") or "")
        text = str(message.get("message") or "")
        if media_id in self._seen_media:  # a repeated notification must not make the agent answer twice
            self._record("media_duplicate", {"media_id": media_id})
            return
        media = await self.load_media(media_id) if self.load_media and media_id else None
        if media is None:
            self._record("media_error", {"media_id": media_id, "reason": reason,
                                         "message": "no such upload in this call"})
            await self.conversation.send({"type": "error", "code": "MEDIA_NOT_FOUND",
                                           "message": "client_media_update names no upload of this call"})
            return
        self._seen_media.add(media_id)
        handler = self.media_handlers.get(reason)
        route = handler.get("route") if handler else None
        self._record("media", {"media_id": media_id, "reason": reason, "message": text,
                               "content_type": media.content_type, "size": media.size, "route": route})
        if handler is not None and route == "webhook" and handler.get("webhook_url"):
            task = asyncio.get_running_loop().create_task(self._webhook(handler, media, reason, text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if (handler is not None and route == "vision" and media.content_type in VISION_TYPES
                and media.size <= MAX_VISION_BYTES):
            encoded = await asyncio.to_thread(base64.b64encode, media.data)  # up to 20 MB: not on the loop
            url = f"data:{media.content_type};base64,{encoded.decode('ascii')}"
            caption = (f"The user shared an image (reason: {reason})."
                       + (f" Their message: {text}" if text else ""))
            content: Any = [{"type": "text", "text": caption}, {"type": "image_url", "image_url": {"url": url}}]
            await self._react({"role": "user", "content": content}, interrupt=bool(handler.get("interrupt")))
            return
        note = (f"[The user uploaded a file: {media.filename or 'unnamed'} ({media.content_type}, "
                f"{media.size} bytes), reason {reason!r}."
                + (f" Their message: {text}" if text else "") + " You cannot open it; acknowledge it.]")
        await self._react({"role": "user", "content": note}, interrupt=bool(handler and handler.get("interrupt")))

    async def _react(self, message: dict[str, Any], *, interrupt: bool) -> None:
        """Give the agent `message` and have it react once: now when idle or interrupting, else with its
        next reply (a reply waiting on a tool continues with it after the tool's result)."""
        conversation = self.conversation
        if conversation.waiting_on_tool:
            conversation.add_context(message)  # the reply goes on with it after the tool's result
        elif conversation.replying and not interrupt:
            conversation.respond_after_reply(message)
        else:
            await conversation.respond(message)

    async def _webhook(self, handler: Mapping[str, Any], media: MediaFile, reason: str, text: str) -> None:
        started = time.monotonic()
        record: dict[str, Any] = {"media_id": media.media_id, "reason": reason, "url": handler["webhook_url"]}
        try:
            response = await asyncio.wait_for(self._post_media(handler, media, reason, text), self.webhook_timeout)
            record["status_code"] = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = {"result_text": response.text}
            if not isinstance(body, dict):
                body = {"result_text": _compact(body)}
            result_text = str(body.get("result_text") or "")[:MAX_RESULT_TEXT]
            interrupt = bool(handler.get("interrupt")) or body.get("interrupt") is True
            if not 200 <= response.status_code < 300:
                result_text = result_text or f"The media service answered HTTP {response.status_code}."
                record["error"] = f"HTTP {response.status_code}"
        except TimeoutError:
            result_text, interrupt = "The uploaded file could not be processed in time.", False
            record["error"] = "timeout"
        except BlockedDestination as exc:
            result_text, interrupt = "The uploaded file could not be processed.", False
            record["error"] = f"refused: {exc.detail}"
            if self.on_guard_refusal is not None:
                self.on_guard_refusal()
        except httpx.HTTPError as exc:
            result_text, interrupt = "The uploaded file could not be processed.", False
            record["error"] = f"{type(exc).__name__}: {exc}"
        record.update(elapsed_ms=round((time.monotonic() - started) * 1000, 1), result_text=result_text,
                      interrupt=interrupt)
        self._record("media_webhook", record)
        role = "user" if handler.get("inject_as") == "user" else "system"
        content = (result_text if role == "user"
                   else f"Result of processing the file the user uploaded (reason {reason!r}): {result_text}")
        message = {"role": role, "content": content}
        self.conversation.run_soon(lambda: self._react(message, interrupt=interrupt))

    async def _post_media(self, handler: Mapping[str, Any], media: MediaFile, reason: str,
                          text: str) -> httpx.Response:
        """POST the multipart form to the webhook, connecting only to a checked public address (unless
        private webhooks are allowed); the Host header and TLS SNI keep the configured name."""
        url = httpx.URL(str(handler["webhook_url"]))
        send_url, extensions, host_header = await pin_url(url, allow_private=self.allow_private_webhooks)
        headers = {str(k): str(v) for k, v in (handler.get("webhook_headers") or {}).items()}
        if host_header:
            headers["Host"] = host_header
        files = {"media": (media.filename or media.media_id, media.data, media.content_type)}
        data = {"reason": reason, "message": text, "session_id": self.session_id}
        request = self._http.build_request("POST", send_url, headers=headers, files=files, data=data,
                                           extensions=extensions, timeout=self.webhook_timeout)
        return await self._http.send(request)

    async def on_media_frame(self, message: Mapping[str, Any]) -> None:
        reason = str(message.get("reason") or "live")
        image = message.get("image")
        if not isinstance(image, str) or not image or len(image) > MAX_FRAME_BYTES:
            return
        now = time.monotonic()
        if now - self._frame_at.get(reason, -1e9) < self.frame_interval:
            return
        if image.startswith("data:"):
            image = image.split(",", 1)[-1]
        try:
            base64.b64decode(image[:64] + "=" * (-len(image[:64]) % 4), validate=True)
        except (binascii.Error, ValueError):
            return
        first = reason not in self.frames
        self._frame_at[reason] = now
        self.frames[reason] = {"image": image, "width": message.get("width"), "height": message.get("height"),
                               "at": time.time()}
        if first:
            self._record("media_frame", {"reason": reason, "width": message.get("width"),
                                         "height": message.get("height")})

    def frame_messages(self) -> list[dict[str, Any]]:
        """The latest live frame of each reason, as a user message with image parts (for one LLM request)."""
        if not self.frames:
            return []
        content: list[dict[str, Any]] = []
        for reason, frame in self.frames.items():
            content.append({"type": "text", "text": f"Latest live frame from the user's {reason} "
                                                    f"({frame['width']}x{frame['height']})."})
            content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{frame['image']}"}})
        return [{"role": "user", "content": content}]

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_record is None:
            return
        try:
            self.on_record(kind, data)
        except Exception:
            log.exception("client event sink failed")
