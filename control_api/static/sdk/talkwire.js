/**
 * Talkwire browser client — an ES module with no dependencies and no build step.
 *
 *   import { TalkwireClient } from "https://your-talkwire-host/sdk/talkwire.js";
 *   const client = new TalkwireClient({
 *     agentId: "…", apiKey: "pk_live_…",
 *     onConnected: () => …, onTranscription: (text, isFinal, role) => …,
 *   });
 *   await client.connect();   // or client.on("connected", …); await client.start();
 *   client.sendContextUpdate({ active_page: "/pricing", customer_tier: "gold" });   // silent context
 *   client.triggerInterrupt("plan_selected", { plan: "Enterprise" });                // cut in, answer now
 *   await client.uploadMedia(file, "kyc_document", "Does my name match?");          // vision/webhook
 *   client.disconnect();
 *
 * Phase 1: POST {baseUrl}/calls/create {agent_id, type: "web"} → {call_id, worker_url}.
 * Phase 2: POST worker_url {sdp, type: "offer"} → {sdp, type: "answer"} (non-trickle ICE: the offer carries
 * every candidate). The browser creates the data channel; every message on it is a JSON object with a
 * `type`. Incoming messages are dispatched through `client.messageHandlers[type]`; other modules extend the
 * client with `client.handleMessage(type, fn)` (client tools, presets).
 *
 * Client tools: every `client_tool_call` is acknowledged at once (`client_tool_ack`) and emitted as
 * `tool_call` (callback `onClientToolCall`); answer blocking ones with sendToolResult / sendToolError.
 * `client_tool_cancel` is emitted as `tool_cancel`. Session continuity: with `sessionBehavior: "continue"`
 * the client passes the stored (or given) `callId`/`prospectId` to POST /calls/create, and the server goes on
 * with that conversation; ids are stored under `vanira_latest_call_id` / `vanira_prospect_id` in both
 * sessionStorage and localStorage whenever a call is created.
 */

export const STORAGE_KEYS = { prospectId: "vanira_prospect_id", callId: "vanira_latest_call_id" };
const CONTINUE_REFUSED = new Set(["CALL_NOT_FOUND", "PROSPECT_NOT_FOUND", "CALL_ENDED", "VALIDATION_ERROR"]);
const ROUTE_POLL_MS = 1000;

const CALLBACKS = {
  session_started: "onSessionStarted",
  connected: "onConnected",
  disconnected: "onDisconnected",
  error: "onError",
  transcription: "onTranscription",
  agent_state: "onAgentState",
  message: "onMessage",
  clear_audio: "onClearAudio",
  local_stream: "onLocalStream",
  remote_track: "onRemoteTrack",
  tool_call: "onClientToolCall",
  tool_cancel: "onClientToolCancel",
};

const DEFAULT_CONNECT_TIMEOUT_MS = 20000;
const DEFAULT_GATHER_TIMEOUT_MS = 5000;

/** An error with the server's code (`INVALID_API_KEY`, `AGENT_NOT_FOUND`, …) or the client's own. */
export class TalkwireError extends Error {
  constructor(code, message, { status = null, fatal = true, cause = undefined } = {}) {
    super(message);
    this.name = "TalkwireError";
    this.code = code;
    this.status = status;
    this.fatal = fatal;
    if (cause !== undefined) this.cause = cause;
  }
}

/** The origin this module was served from: the Talkwire server, unless the page says otherwise. */
function moduleOrigin() {
  try {
    return new URL(import.meta.url).origin;
  } catch {
    return window.location.origin;
  }
}

async function readError(response, fallbackCode) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const err = body && body.error;
  if (err && err.code) {
    return new TalkwireError(err.code, err.message || err.code, { status: response.status });
  }
  return new TalkwireError(fallbackCode, `${fallbackCode}: HTTP ${response.status}`, { status: response.status });
}

function storageGet(key) {
  for (const store of [globalThis.sessionStorage, globalThis.localStorage]) {
    try {
      const value = store?.getItem(key);
      if (value) return value;
    } catch {
      /* storage blocked (privacy mode, sandboxed frame) */
    }
  }
  return null;
}

function storageSet(key, value) {
  for (const store of [globalThis.sessionStorage, globalThis.localStorage]) {
    try {
      if (value) store?.setItem(key, value);
      else store?.removeItem(key);
    } catch {
      /* storage blocked */
    }
  }
}

function currentRoute() {
  return `${location.pathname}${location.search}${location.hash}`;
}

/** history.pushState/replaceState announce themselves (once per page) so route tracking sees SPA routing. */
function patchHistory() {
  if (history.__talkwirePatched) return;
  history.__talkwirePatched = true;
  for (const method of ["pushState", "replaceState"]) {
    const original = history[method];
    history[method] = function (...args) {
      const out = original.apply(this, args);
      window.dispatchEvent(new Event("talkwire:locationchange"));
      return out;
    };
  }
}

async function postJson(url, body, headers, fallbackCode) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  } catch (cause) {
    throw new TalkwireError("NETWORK_ERROR", `Could not reach ${url}: ${cause.message || cause}`, { cause });
  }
  if (!response.ok) throw await readError(response, fallbackCode);
  return response.json();
}

function toRtcIceServers(list) {
  return (list || []).map((server) => {
    const entry = { urls: server.urls };
    if (server.username != null) entry.username = server.username;
    if (server.credential != null) entry.credential = server.credential;
    return entry;
  });
}

export class TalkwireClient {
  /**
   * @param {object} options
   *   agentId, apiKey             — the agent and a publishable key (pk_live_…)
   *   baseUrl / serverUrl         — the API base (default: where this module was loaded from); `serverUrl`
   *                                 together with `callId` is a worker URL from your backend (skips Phase 1)
   *   prospectId, callId          — link to an existing prospect / a call your backend created
   *   iceServers                  — skip GET /discovery/ice-servers and use these
   *   audio                       — { echoCancellation, noiseSuppression, autoGainControl } (default all true)
   *   audioElement                — element that plays the agent (default: one the client creates);
   *   playAudio                   — false to leave playback to onRemoteTrack
   *   dataChannelLabel            — default "talkwire"
   *   sessionBehavior             — "new" (default) or "continue" (go on with the stored/given callId)
   *   trackRouteContext           — default true: tell the agent the page route (client_context_update)
   *   autoAckToolCalls            — default true: acknowledge each client_tool_call at once
   *   on<Event> callbacks         — onSessionStarted, onConnected, onDisconnected, onError,
   *                                 onTranscription(text, isFinal, role), onAgentState(state), onMessage(msg),
   *                                 onClearAudio(), onLocalStream(stream), onRemoteTrack(track, stream),
   *                                 onClientToolCall(call), onClientToolCancel(message)
   */
  constructor(options = {}) {
    this.options = { ...options };
    this.agentId = options.agentId || null;
    this.apiKey = options.apiKey || null;
    this.sessionBehavior = options.sessionBehavior === "continue" ? "continue" : "new";
    this.prospectId = options.prospectId || (this.sessionBehavior === "continue" ? storageGet(STORAGE_KEYS.prospectId) : null);
    this.callId = options.callId || null;
    // The call to continue: the given callId (without serverUrl) or the latest stored one.
    this._continueCallId =
      this.sessionBehavior === "continue" && !(options.callId && options.serverUrl)
        ? options.callId || storageGet(STORAGE_KEYS.callId)
        : null;
    this._routeWatch = null;
    this.baseUrl = (options.baseUrl || (options.callId ? null : options.serverUrl) || moduleOrigin()).replace(/\/+$/, "");
    // serverUrl + callId: a worker URL your backend provisioned (no Phase 1); otherwise serverUrl is the API base.
    this._givenWorkerUrl = options.callId && options.serverUrl ? options.serverUrl : null;
    this.workerUrl = this._givenWorkerUrl;
    this.state = "idle"; // idle → connecting → connected → disconnected
    this.agentState = null;
    this.pc = null;
    this.dataChannel = null;
    this.localStream = null;
    this.remoteStream = null;
    this.audioElement = options.audioElement || null;
    this._listeners = new Map();
    this._onPageHide = () => this.disconnect();
    this._connectTimer = null;
    /** type → handler(message); add with handleMessage(). */
    this.messageHandlers = {
      transcription: (m) => this._emit("transcription", m.text, Boolean(m.is_final), m.role || "user", m),
      agent_state: (m) => {
        this.agentState = m.state;
        this._emit("agent_state", m.state, m);
      },
      clearAudio: (m) => this._clearAudio(m),
      client_tool_call: (m) => this._onToolCall(m),
      client_tool_cancel: (m) => this._emit("tool_cancel", m),
      error: (m) =>
        this._emit("error", new TalkwireError(m.code || "SERVER_ERROR", m.message || "Server error", { fatal: false })),
    };
  }

  /** GET /discovery/ice-servers → a list for RTCPeerConnection({iceServers}). */
  static async fetchIceServers(apiKey, baseUrl) {
    const base = (baseUrl || moduleOrigin()).replace(/\/+$/, "");
    let response;
    try {
      response = await fetch(`${base}/discovery/ice-servers`, { headers: apiKey ? { "X-API-Key": apiKey } : {} });
    } catch (cause) {
      throw new TalkwireError("NETWORK_ERROR", `Could not reach ${base}: ${cause.message || cause}`, { cause });
    }
    if (!response.ok) throw await readError(response, "ICE_SERVERS_FAILED");
    const body = await response.json();
    return toRtcIceServers(body.ice_servers);
  }

  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
    return this;
  }

  /** Handle server messages of `type` (replaces any handler for it). */
  handleMessage(type, fn) {
    this.messageHandlers[type] = fn;
    return this;
  }

  _emit(event, ...args) {
    const callback = this.options[CALLBACKS[event]];
    const fns = [...(typeof callback === "function" ? [callback] : []), ...(this._listeners.get(event) || [])];
    for (const fn of fns) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`[Talkwire] ${event} handler failed`, err);
      }
    }
  }

  get connected() {
    return this.state === "connected";
  }

  start() {
    return this.connect();
  }

  stop(reason) {
    this.disconnect(reason);
  }

  /** Phase 1 + Phase 2. Resolves once the call is live; on failure emits `error`, cleans up and rejects. */
  async connect() {
    if (this.state === "connecting" || this.state === "connected") {
      throw new TalkwireError("ALREADY_CONNECTED", "This client already has a call; disconnect() first");
    }
    this.state = "connecting";
    this._disconnectEmitted = false;
    // Closing the tab otherwise leaves the server to notice by ICE consent expiry (~30 s).
    window.addEventListener("pagehide", this._onPageHide);
    try {
      await this._provision();
      const iceServers = await this._iceServers();
      this._ensureConnecting();
      await this._negotiate(iceServers);
      await this._waitConnected();
    } catch (err) {
      const error =
        err instanceof TalkwireError ? err : new TalkwireError("CONNECTION_FAILED", String(err.message || err), { cause: err });
      if (this.state === "connecting") {
        this._emit("error", error);
        this._teardown();
      }
      throw error;
    }
  }

  /** Throws when disconnect() or a failure ended the attempt while connect() was awaiting. */
  _ensureConnecting() {
    if (this.state !== "connecting") throw new TalkwireError("CANCELLED", "The call attempt was ended", { fatal: false });
  }

  async _provision() {
    if (this._givenWorkerUrl) {
      this.workerUrl = this._givenWorkerUrl;
      this._emit("session_started", { callId: this.callId, prospectId: this.prospectId, serverUrl: this.workerUrl });
      return;
    }
    if (!this.apiKey) {
      throw new TalkwireError("SERVER_URL_MISSING", "serverUrl is missing: pass apiKey, or serverUrl and callId");
    }
    if (!this.agentId) throw new TalkwireError("VALIDATION_ERROR", "agentId is required");
    const body = { agent_id: this.agentId, type: "web" };
    if (this.prospectId) body.prospect_id = this.prospectId;
    if (this._continueCallId) body.call_id = this._continueCallId;
    const headers = { "X-API-Key": this.apiKey };
    let created;
    try {
      created = await postJson(`${this.baseUrl}/calls/create`, body, headers, "CREATE_CALL_FAILED");
    } catch (err) {
      // A stored session the server no longer knows (or another prospect's): start fresh instead.
      if (!body.call_id || !(err instanceof TalkwireError) || !CONTINUE_REFUSED.has(err.code) || this.options.callId) throw err;
      storageSet(STORAGE_KEYS.callId, null);
      delete body.call_id;
      if (!this.options.prospectId && err.code === "PROSPECT_NOT_FOUND") {
        storageSet(STORAGE_KEYS.prospectId, null);
        delete body.prospect_id;
        this.prospectId = null;
      }
      this._ensureConnecting();
      created = await postJson(`${this.baseUrl}/calls/create`, body, headers, "CREATE_CALL_FAILED");
    }
    this.callId = created.call_id;
    this.workerUrl = created.worker_url;
    if (created.prospect_id) this.prospectId = created.prospect_id;
    if (!this.workerUrl) throw new TalkwireError("SERVER_URL_MISSING", "The server returned no worker_url");
    // The next `continue` resumes this call (it carries the earlier ones' history on the server).
    this._continueCallId = this.sessionBehavior === "continue" ? this.callId : null;
    storageSet(STORAGE_KEYS.callId, this.callId);
    if (this.prospectId) storageSet(STORAGE_KEYS.prospectId, this.prospectId);
    this._emit("session_started", { callId: this.callId, prospectId: this.prospectId, serverUrl: this.workerUrl });
  }

  async _iceServers() {
    if (this.options.iceServers) return toRtcIceServers(this.options.iceServers);
    if (!this.apiKey) return [];
    return TalkwireClient.fetchIceServers(this.apiKey, this.baseUrl);
  }

  async _negotiate(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    const channel = pc.createDataChannel(this.options.dataChannelLabel || "talkwire");
    this.dataChannel = channel;
    channel.onopen = () => this._onChannelOpen();
    channel.onclose = () => this._onRemoteEnd("data channel closed");
    channel.onmessage = (event) => this._onMessage(event.data);
    pc.ontrack = (event) => this._onTrack(event);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") {
        this._fail(new TalkwireError("ICE_FAILED", "The media connection to the worker failed"));
      } else if (pc.connectionState === "closed") {
        this._onRemoteEnd("peer connection closed");
      }
    };

    const audio = this.options.audio || {};
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: audio.echoCancellation ?? true,
          noiseSuppression: audio.noiseSuppression ?? true,
          autoGainControl: audio.autoGainControl ?? true,
        },
      });
    } catch (cause) {
      const denied = cause && (cause.name === "NotAllowedError" || cause.name === "SecurityError");
      throw new TalkwireError(
        denied ? "MICROPHONE_PERMISSION_DENIED" : "MICROPHONE_UNAVAILABLE",
        denied ? "Microphone permission denied" : `No microphone: ${cause.message || cause}`,
        { cause },
      );
    }
    this._ensureConnecting();
    this._emit("local_stream", this.localStream);
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);

    await pc.setLocalDescription(await pc.createOffer());
    await this._gatheringComplete(pc);
    this._ensureConnecting();
    const answer = await postJson(
      this.workerUrl,
      { sdp: pc.localDescription.sdp, type: "offer" },
      {},
      "WORKER_REJECTED_OFFER",
    );
    this._ensureConnecting();
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  _gatheringComplete(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.gatherTimeoutMs || DEFAULT_GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") done();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  _waitConnected() {
    if (this.state === "connected") return Promise.resolve();
    return new Promise((resolve, reject) => {
      this._connectWaiter = { resolve, reject };
      this._connectTimer = setTimeout(
        () => reject(new TalkwireError("ICE_FAILED", "Timed out connecting to the worker (ICE/DTLS)")),
        this.options.connectTimeoutMs || DEFAULT_CONNECT_TIMEOUT_MS,
      );
    }).finally(() => {
      clearTimeout(this._connectTimer);
      this._connectWaiter = null;
    });
  }

  _onChannelOpen() {
    if (this.state !== "connecting") return;
    this.state = "connected";
    this._emit("connected");
    this._connectWaiter?.resolve();
    if (this.options.trackRouteContext !== false) this._startRouteTracking();
  }

  /** Automatic page-route context: call_started_on_page now, user_navigated on every route change. */
  _startRouteTracking() {
    if (this._routeWatch || typeof window === "undefined") return;
    patchHistory();
    let last = currentRoute();
    const report = (data) => {
      try {
        this.sendContextUpdate(data);
      } catch {
        /* the call is ending */
      }
    };
    report({ user_action: "call_started_on_page", current_route: last, current_page: document.title || last });
    const check = () => {
      const now = currentRoute();
      if (now === last) return;
      const previous = last;
      last = now;
      report({ user_action: "user_navigated", previous_route: previous, current_route: now, current_page: document.title || now });
    };
    // Navigate listeners route after the event; check once the page had a moment to change.
    const later = () => setTimeout(check, 0);
    const events = ["popstate", "hashchange", "talkwire:locationchange", "talkwire:navigate", "vanira:navigate"];
    for (const name of events) window.addEventListener(name, later);
    const timer = setInterval(check, ROUTE_POLL_MS); // routers that bypass history (rare) still get noticed
    this._routeWatch = () => {
      for (const name of events) window.removeEventListener(name, later);
      clearInterval(timer);
    };
  }

  _onToolCall(message) {
    if (this.options.autoAckToolCalls !== false && message.tool_call_id) {
      try {
        this.send({ type: "client_tool_ack", tool_call_id: message.tool_call_id });
      } catch {
        /* the call is ending */
      }
    }
    this._emit("tool_call", message);
  }

  _onTrack(event) {
    const stream = event.streams[0] || new MediaStream([event.track]);
    this.remoteStream = stream;
    if (event.track.kind === "audio" && this.options.playAudio !== false) {
      if (!this.audioElement) {
        this.audioElement = new Audio();
        this.audioElement.autoplay = true;
        this._ownsAudioElement = true;
      }
      this.audioElement.srcObject = stream;
      this.audioElement.play().catch((err) => {
        this._emit("error", new TalkwireError("AUTOPLAY_BLOCKED", `Agent audio blocked: ${err.message}`, { fatal: false }));
      });
    }
    this._emit("remote_track", event.track, stream);
  }

  _onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("[Talkwire] ignoring a non-JSON message", data);
      return;
    }
    if (!message || typeof message !== "object") return;
    this._emit("message", message);
    const handler = this.messageHandlers[message.type];
    if (handler) {
      try {
        handler.call(this, message);
      } catch (err) {
        console.error(`[Talkwire] handler for ${message.type} failed`, err);
      }
    }
  }

  /**
   * Barge-in: the server dropped what it had queued. WebRTC plays agent audio as it arrives (only the
   * jitter buffer sits in between), so there is nothing of ours to flush; apps that buffer agent audio
   * themselves flush it in onClearAudio.
   */
  _clearAudio(message) {
    this._emit("clear_audio", message);
  }

  /** Send a JSON object on the data channel. Throws DATA_CHANNEL_NOT_OPEN before onConnected / after the call. */
  send(message) {
    if (!this.dataChannel || this.dataChannel.readyState !== "open") {
      throw new TalkwireError("DATA_CHANNEL_NOT_OPEN", "The data channel is not open: wait for onConnected", { fatal: false });
    }
    this.dataChannel.send(JSON.stringify(message));
  }

  /** Low-level event: `data` is merged into the message, `type` is the event name. */
  sendEvent(type, data = {}) {
    this.send({ ...data, type });
  }

  /** Answer a blocking client tool. */
  sendToolResult(toolCallId, result = { status: "success" }) {
    this.send({ type: "client_tool_result", tool_call_id: toolCallId, result });
  }

  /** Report that a client tool failed; the agent is told and recovers. */
  sendToolError(toolCallId, message) {
    this.send({ type: "client_tool_error", tool_call_id: toolCallId, message: String(message ?? "error") });
  }

  /** Silent context for the agent (no reply): page, cart, selection, … */
  sendContextUpdate(data = {}) {
    this.send({ type: "client_context_update", data });
  }

  updateContext(data = {}) {
    this.sendContextUpdate(data);
  }

  /** Something happened that deserves an immediate spoken response (the agent is cut off first). */
  sendActionTrigger(action, data = {}) {
    this.send({ type: "client_action_trigger", action, data });
  }

  /** Cut the agent's current speech (pending screen tools are cancelled too). */
  triggerActionInterrupt() {
    this.send({ type: "client_action_interrupt" });
  }

  /** triggerActionInterrupt() then sendActionTrigger(action, data), in that order. */
  triggerInterrupt(action, data = {}) {
    this.triggerActionInterrupt();
    this.sendActionTrigger(action, data);
  }

  /** Cut the agent's audio only (pending screen tools stay open). */
  interruptAudioOnly() {
    this.send({ type: "client_interrupt_audio" });
  }

  /** The worker base (where /webrtc lives): uploads go there too. */
  get workerBase() {
    if (!this.workerUrl) return null;
    const url = new URL(this.workerUrl, window.location.href);
    const path = url.pathname.replace(/\/webrtc\/?$/, "");
    return `${url.origin}${path}`;
  }

  /**
   * Upload a file during the call and tell the agent (`client_media_update`; it reacts once — do not send an
   * action trigger as well). Resolves to {media_id, url}. `interruptFirst` cuts the agent's audio first.
   */
  async uploadMedia(file, reason, message = "", { interruptFirst = false } = {}) {
    if (!this.connected || !this.workerBase) {
      throw new TalkwireError("DATA_CHANNEL_NOT_OPEN", "Upload during a connected call (wait for onConnected)", { fatal: false });
    }
    if (!reason) throw new TalkwireError("VALIDATION_ERROR", "reason is required", { fatal: false });
    if (interruptFirst) this.interruptAudioOnly();
    const form = new FormData();
    form.append("file", file, file.name || "upload");
    form.append("reason", reason);
    form.append("message", message || "");
    const url = `${this.workerBase}/media/upload?call_id=${encodeURIComponent(this.callId)}`;
    let response;
    try {
      response = await fetch(url, { method: "POST", body: form });
    } catch (cause) {
      throw new TalkwireError("NETWORK_ERROR", `Could not upload to ${url}: ${cause.message || cause}`, { cause, fatal: false });
    }
    if (!response.ok) {
      const error = await readError(response, "UPLOAD_FAILED");
      error.fatal = false;
      throw error;
    }
    const uploaded = await response.json();
    this.send({ type: "client_media_update", media_id: uploaded.media_id, url: uploaded.url, reason, message: message || "" });
    return uploaded;
  }

  _fail(error) {
    if (this.state === "idle" || this.state === "disconnected") return;
    if (this._connectWaiter) {
      this._connectWaiter.reject(error); // connect() emits it and tears down
      return;
    }
    this._emit("error", error);
    this._teardown();
  }

  _onRemoteEnd(why) {
    if (this.state === "connecting") {
      this._fail(new TalkwireError("CONNECTION_FAILED", `The call ended while connecting (${why})`));
    } else if (this.state === "connected") {
      this._teardown();
    }
  }

  /** Hang up: releases the microphone, closes the data channel and the peer connection, emits `disconnected`. */
  disconnect() {
    if (this.state === "idle" || this.state === "disconnected") return;
    if (this._connectWaiter) this._connectWaiter.reject(new TalkwireError("CANCELLED", "disconnect() called while connecting", { fatal: false }));
    this._teardown();
  }

  _teardown() {
    const wasActive = this.state === "connecting" || this.state === "connected";
    this.state = "disconnected";
    this._routeWatch?.();
    this._routeWatch = null;
    window.removeEventListener("pagehide", this._onPageHide);
    const channel = this.dataChannel;
    const pc = this.pc;
    this.dataChannel = null;
    this.pc = null;
    if (channel) {
      channel.onopen = channel.onclose = channel.onmessage = null;
      try {
        channel.close();
      } catch {
        /* already closed */
      }
    }
    if (pc) {
      pc.ontrack = pc.onconnectionstatechange = null;
      pc.close();
    }
    for (const track of this.localStream?.getTracks() || []) track.stop();
    this.localStream = null;
    if (this.audioElement) {
      this.audioElement.srcObject = null;
      if (this._ownsAudioElement) this.audioElement = null;
    }
    this.remoteStream = null;
    if (wasActive && !this._disconnectEmitted) {
      this._disconnectEmitted = true;
      this._emit("disconnected");
    }
  }
}

export default TalkwireClient;
