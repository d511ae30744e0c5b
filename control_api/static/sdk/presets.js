/**
 * Talkwire PresetRenderer — renders the 27 built-in client-tool presets in the page, with plain DOM.
 *
 *   import { TalkwireClient } from "/sdk/talkwire.js";
 *   import { PresetRenderer } from "/sdk/presets.js";
 *   const client = new TalkwireClient({ agentId, apiKey });
 *   const presets = new PresetRenderer(client, { onCustomTool: (call, client) => { … } });
 *   await client.connect();
 *
 * The renderer only needs this of the client: sendToolResult(id, result), sendToolError(id, message),
 * uploadMedia(file, reason, message) → {media_id, url}, sendEvent(type, data), and on(event, fn) for
 * "tool_call" (and/or "message" carrying client_tool_call / client_tool_cancel). Tool calls can also
 * be fed by hand with enqueueToolCall(call); cancelToolCall(id, reason) closes one.
 *
 * Every preset answers a blocking call with sendToolResult or sendToolError; fire_and_forget calls
 * get no answer (the agent did not wait). A cancelled blocking call answers
 * {status: "interrupted", reason, …} (navigate adds target_url) and its UI closes.
 * DOM made here carries data-talkwire-* attributes so pages and tests can find it.
 */

export const PRESET_IDS = [
  "vanira_form", "vanira_calendar", "vanira_upload", "vanira_camera", "vanira_navigate",
  "vanira_highlight_element", "vanira_click_element", "vanira_select_option", "vanira_set_date",
  "vanira_type_text", "vanira_erase_text", "vanira_erase_draw", "vanira_draw", "vanira_live_vision",
  "vanira_close_live_camera", "vanira_live_screen", "vanira_close_live_screen", "vanira_clip_region",
  "vanira_tab_screenshot", "vanira_screen_ink", "vanira_screen_cursor", "vanira_screen_click",
  "vanira_clear_screen_overlay", "vanira_page_scan", "vanira_point_at", "vanira_outline_targets",
  "vanira_clear_guide",
];

const NAVIGATE_EVENTS = ["talkwire:navigate", "vanira:navigate"];
const BOARD_W = 800; // chalkboard coordinates: the seed's examples (apex 400,80 / radius 90) fit 800×500
const BOARD_H = 500;
const INTERACTIVE =
  "a[href],button,input:not([type=hidden]),select,textarea,[role=button],[role=link],[role=tab]," +
  "[role=menuitem],[role=checkbox],[role=option],[contenteditable=''],[contenteditable=true],[onclick],summary,label[for]";

class Interrupted extends Error {
  constructor(reason) {
    super(`interrupted: ${reason}`);
    this.reason = reason;
  }
}

class ToolFailure extends Error {}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Interrupted(signal.reason));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new Interrupted(signal.reason));
    }, { once: true });
  });
}

/** Resolve when `signal` aborts (rejects with Interrupted), racing a promise. */
function abortable(promise, signal) {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Interrupted(signal.reason));
    signal.addEventListener("abort", () => reject(new Interrupted(signal.reason)), { once: true });
    promise.then(resolve, reject);
  });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function slug(label) {
  return String(label).trim().toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "") || "field";
}

function cssEscape(value) {
  return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/[^a-zA-Z0-9_-]/g, "\\$&");
}

function samePath(a, b) {
  const norm = (p) => (p || "/").replace(/\/+$/, "") || "/";
  return norm(a) === norm(b);
}

/** Set an input's value so frameworks (React, Vue) see it, then fire input. */
function setNativeValue(node, value) {
  const proto =
    node instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype
      : node instanceof HTMLSelectElement ? HTMLSelectElement.prototype
        : HTMLInputElement.prototype;
  const setter = Object.getOwnPropertyDescriptor(proto, "value")?.set;
  if (setter) setter.call(node, value);
  else node.value = value;
  node.dispatchEvent(new Event("input", { bubbles: true }));
}

function isTextField(node) {
  return node instanceof HTMLInputElement || node instanceof HTMLTextAreaElement;
}

function isVisible(node) {
  const rect = node.getBoundingClientRect();
  if (rect.width < 1 || rect.height < 1) return false;
  if (rect.bottom < 0 || rect.right < 0 || rect.top > innerHeight || rect.left > innerWidth) return false;
  const style = getComputedStyle(node);
  return style.visibility !== "hidden" && style.display !== "none" && Number(style.opacity) > 0;
}

function describe(node) {
  const text = (node.getAttribute("aria-label") || node.innerText || node.value || node.placeholder ||
    node.title || node.alt || "").trim().replace(/\s+/g, " ");
  return text.slice(0, 80);
}

/** A CSS selector that finds `node` again (id when it has one, else a short nth-of-type path). */
function selectorFor(node) {
  if (node.id) return `#${cssEscape(node.id)}`;
  const parts = [];
  let current = node;
  while (current && current.nodeType === 1 && current !== document.body && parts.length < 5) {
    if (current.id) {
      parts.unshift(`#${cssEscape(current.id)}`);
      break;
    }
    let index = 1;
    for (let sib = current.previousElementSibling; sib; sib = sib.previousElementSibling) {
      if (sib.tagName === current.tagName) index += 1;
    }
    parts.unshift(`${current.tagName.toLowerCase()}:nth-of-type(${index})`);
    current = current.parentElement;
  }
  return parts.join(" > ");
}

function formatDate(iso, format) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ""));
  if (!m) throw new ToolFailure(`date must be ISO YYYY-MM-DD, got ${JSON.stringify(iso)}`);
  const [, y, mo, d] = m;
  return String(format || "YYYY-MM-DD").replace("YYYY", y).replace("YY", y.slice(2)).replace("MM", mo).replace("DD", d);
}

function asNumber(value, fallback) {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) ? n : fallback;
}

function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function canvasToBlob(canvas, type = "image/jpeg", quality = 0.85) {
  return new Promise((resolve, reject) => {
    try {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("canvas is empty"))), type, quality);
    } catch (err) {
      reject(err); // SecurityError on a tainted canvas
    }
  });
}

const STYLE = `
[data-talkwire-modal]{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;
  background:rgba(15,23,42,.45);z-index:2147483000;font:14px/1.4 system-ui,sans-serif}
[data-talkwire-card]{background:#fff;color:#0f172a;border-radius:12px;box-shadow:0 10px 40px rgba(0,0,0,.3);
  padding:20px;min-width:300px;max-width:min(92vw,520px);max-height:90vh;overflow:auto}
[data-talkwire-card] h3{margin:0 0 6px;font-size:17px}
[data-talkwire-card] p{margin:0 0 12px;color:#475569}
[data-talkwire-card] label{display:block;margin:8px 0 2px;font-weight:600}
[data-talkwire-card] input,[data-talkwire-card] select{width:100%;box-sizing:border-box;padding:7px;
  border:1px solid #cbd5e1;border-radius:6px;font:inherit}
[data-talkwire-actions]{display:flex;gap:8px;justify-content:flex-end;margin-top:14px}
[data-talkwire-actions] button,[data-talkwire-slot]{padding:7px 14px;border-radius:6px;border:1px solid #cbd5e1;
  background:#f8fafc;cursor:pointer;font:inherit}
[data-talkwire-actions] button[data-talkwire-primary]{background:#0f766e;border-color:#0f766e;color:#fff}
[data-talkwire-slot][aria-pressed=true]{background:#0f766e;color:#fff}
[data-talkwire-overlay]{position:fixed;inset:0;pointer-events:none;z-index:2147482000}
[data-talkwire-cursor]{position:fixed;width:22px;height:22px;margin:-2px 0 0 -2px;z-index:2147482500;
  pointer-events:none;transition:left .45s ease,top .45s ease}
[data-talkwire-cursor] span{position:absolute;left:22px;top:14px;white-space:nowrap;padding:2px 6px;
  border-radius:4px;color:#fff;font:12px system-ui,sans-serif}
[data-talkwire-outline]{position:fixed;pointer-events:none;z-index:2147482400;border-radius:6px;
  box-sizing:border-box}
[data-talkwire-ripple]{position:fixed;width:36px;height:36px;margin:-18px 0 0 -18px;border-radius:50%;
  pointer-events:none;z-index:2147482600;animation:talkwire-ripple .6s ease-out forwards}
@keyframes talkwire-ripple{from{transform:scale(.2);opacity:.9}to{transform:scale(1.6);opacity:0}}
[data-talkwire-board]{position:fixed;right:16px;bottom:16px;width:min(560px,70vw);background:#1f2a24;
  border:6px solid #8b5a2b;border-radius:8px;z-index:2147481000;color:#f1f5f9}
[data-talkwire-board] canvas{display:block;width:100%;height:auto}
[data-talkwire-board-notes]{min-height:2.2em;padding:6px 10px;font:16px/1.4 "Comic Sans MS",cursive,sans-serif;
  white-space:pre-wrap;border-top:1px dashed #64748b}
[data-talkwire-preview]{position:fixed;left:16px;bottom:16px;width:200px;border-radius:8px;z-index:2147481500;
  box-shadow:0 4px 16px rgba(0,0,0,.35);background:#000}
[data-talkwire-clip]{position:fixed;inset:0;z-index:2147483000;cursor:crosshair;background:rgba(15,23,42,.25)}
[data-talkwire-clip] div{position:fixed;border:2px dashed #f97316;background:rgba(249,115,22,.12)}
[data-talkwire-clip] p{position:fixed;top:12px;left:50%;transform:translateX(-50%);margin:0;padding:6px 12px;
  background:#0f172a;color:#fff;border-radius:6px;font:14px system-ui,sans-serif}
`;

export class PresetRenderer {
  /**
   * @param client   the Talkwire client (see the module comment for what it must offer)
   * @param options  root (where UI mounts, default document.body), onCustomTool(call, client) for tools
   *                 without a preset_id, navigateWaitMs (how long a navigate listener may take to set
   *                 detail.handled, default 400), elementWaitMs (route rule: wait for the element,
   *                 default 5000), autoAttach (default true: listen to the client's events)
   */
  constructor(client, options = {}) {
    this.client = client;
    this.root = options.root || document.body;
    this.onCustomTool = options.onCustomTool || null;
    this.navigateWaitMs = options.navigateWaitMs ?? 400;
    this.elementWaitMs = options.elementWaitMs ?? 5000;
    this.active = new Map(); // tool_call_id → {call, controller, interruptInfo, blocking}
    this.seen = new Set();
    this.queue = Promise.resolve();
    this.live = { camera: null, screen: null };
    this._unsubscribe = [];
    this._injectStyle();
    if (options.autoAttach !== false && client && typeof client.on === "function") this.attach();
  }

  attach() {
    const onCall = (call) => this.enqueueToolCall(call);
    const onMessage = (message) => {
      if (!message || typeof message !== "object") return;
      if (message.type === "client_tool_call") this.enqueueToolCall(message);
      else if (message.type === "client_tool_cancel") this.cancelToolCall(message.tool_call_id, message.reason);
    };
    const onCancel = (message) => this.cancelToolCall(message?.tool_call_id, message?.reason);
    const onEnd = () => this.reset("call_ended", { answer: false });
    const subs = [["tool_call", onCall], ["message", onMessage], ["tool_cancel", onCancel], ["disconnected", onEnd]];
    for (const [event, fn] of subs) {
      this.client.on(event, fn);
      this._unsubscribe.push(() => this.client.off?.(event, fn));
    }
  }

  /**
   * Close everything: running calls stop (answered "interrupted" unless answer is false — after a
   * hang-up there is no one to answer), live streams stop, overlays go. The renderer keeps listening,
   * so a reconnecting client (sessionBehavior "continue") keeps its presets.
   */
  reset(reason = "call_ended", { answer = true } = {}) {
    for (const id of [...this.active.keys()]) this.cancelToolCall(id, reason, { answer });
    this._stopLive("camera");
    this._stopLive("screen");
    for (const node of this.root.querySelectorAll("[data-talkwire-ui]")) node.remove();
  }

  /** reset(), then stop listening to the client. */
  destroy(reason = "call_ended") {
    this.reset(reason);
    this._unsubscribe.splice(0).forEach((fn) => fn());
  }

  /**
   * Run one client_tool_call (presets here; other tools go to onCustomTool). Blocking calls run one at
   * a time, in order; fire_and_forget ones (camera, live streams) start at once, since nothing waits.
   */
  enqueueToolCall(raw) {
    const call = raw && raw.toolCall ? raw.toolCall : raw;
    if (!call || !call.tool_call_id || this.seen.has(call.tool_call_id)) return;
    this.seen.add(call.tool_call_id);
    const args = call.arguments || {};
    const presetId = call.preset_id || args.preset_id || null;
    if (!presetId || !this.handlers[presetId]) {
      if (presetId) console.warn(`[Talkwire] unknown preset ${presetId}`);
      if (this.onCustomTool) {
        try {
          this.onCustomTool(call, this.client);
        } catch (err) {
          console.error("[Talkwire] onCustomTool failed", err);
        }
      }
      return;
    }
    const controller = new AbortController();
    const blocking = call.execution_mode !== "fire_and_forget";
    const entry = { call, controller, blocking, interruptInfo: {} };
    this.active.set(call.tool_call_id, entry);
    if (!blocking) return this._run(presetId, entry, args);
    this.queue = this.queue.then(() => this._run(presetId, entry, args));
    return this.queue;
  }

  /** The server cancelled (barge-in, hang-up, timeout): close the UI, answer "interrupted". */
  cancelToolCall(toolCallId, reason = "cancelled", { answer = true } = {}) {
    const entry = this.active.get(toolCallId);
    if (!entry) return;
    this.active.delete(toolCallId);
    entry.controller.abort(reason || "cancelled");
    if (entry.blocking && answer) {
      this._send("sendToolResult", toolCallId, { status: "interrupted", reason: reason || "cancelled", ...entry.interruptInfo });
    }
  }

  async _run(presetId, entry, args) {
    const { call, controller, blocking } = entry;
    if (controller.signal.aborted) return;
    const ctx = {
      call,
      args,
      agent: args.agent_arguments || {},
      signal: controller.signal,
      blocking,
      setInterruptInfo: (info) => Object.assign(entry.interruptInfo, info),
    };
    let result;
    try {
      result = await this.handlers[presetId].call(this, ctx);
    } catch (err) {
      if (controller.signal.aborted || err instanceof Interrupted) return; // cancelToolCall answered
      this.active.delete(call.tool_call_id);
      const message = err && err.message ? err.message : String(err);
      console.warn(`[Talkwire] ${presetId} failed: ${message}`);
      if (blocking) this._send("sendToolError", call.tool_call_id, message);
      return;
    }
    if (controller.signal.aborted) return;
    this.active.delete(call.tool_call_id);
    if (blocking) this._send("sendToolResult", call.tool_call_id, result ?? { status: "success" });
  }

  _send(method, ...args) {
    try {
      const out = this.client[method](...args);
      if (out && typeof out.catch === "function") out.catch((err) => console.warn(`[Talkwire] ${method} failed`, err));
    } catch (err) {
      console.warn(`[Talkwire] ${method} failed`, err); // the call is over; nothing to answer to
    }
  }

  _event(type, data) {
    try {
      this.client.sendEvent(type, data);
      return true;
    } catch (err) {
      console.warn(`[Talkwire] sendEvent ${type} failed`, err);
      return false;
    }
  }

  _injectStyle() {
    if (document.querySelector("style[data-talkwire-styles]")) return;
    document.head.append(el("style", { "data-talkwire-styles": "" }, STYLE));
  }

  // ---- shared UI pieces -------------------------------------------------------------------------

  /** A modal card for `ctx`; removed when the call ends or is cancelled. */
  _modal(ctx, presetId, title, description) {
    const card = el("div", { "data-talkwire-card": "" },
      title ? el("h3", { text: title }) : null,
      description ? el("p", { text: description, "data-talkwire-description": "" }) : null);
    const modal = el("div", {
      "data-talkwire-ui": "", "data-talkwire-modal": "", "data-talkwire-preset": presetId,
      "data-talkwire-tool-call-id": ctx.call.tool_call_id, role: "dialog", "aria-modal": "true",
    }, card);
    this.root.append(modal);
    ctx.signal.addEventListener("abort", () => modal.remove(), { once: true });
    return { modal, card, close: () => modal.remove() };
  }

  /** Buttons row; resolves with the clicked action's value. */
  _actions(card, buttons) {
    return new Promise((resolve) => {
      const row = el("div", { "data-talkwire-actions": "" });
      for (const b of buttons) {
        row.append(el("button", {
          type: b.submit ? "submit" : "button", "data-talkwire-action": b.action, "data-talkwire-primary": b.primary,
          onclick: b.submit ? null : () => resolve(b.action),
        }, b.label));
      }
      card.append(row);
    });
  }

  _overlay(kind) {
    let layer = this.root.querySelector(`[data-talkwire-overlay="${kind}"]`);
    if (!layer) {
      layer = el("div", { "data-talkwire-ui": "", "data-talkwire-overlay": kind });
      this.root.append(layer);
    }
    return layer;
  }

  _point(x, y) {
    const px = asNumber(x, null);
    const py = asNumber(y, null);
    if (px === null || py === null) return null;
    return { x: px <= 1 && px >= 0 ? px * innerWidth : px, y: py <= 1 && py >= 0 ? py * innerHeight : py };
  }

  _find(args, { idKey = "element_id", selectorKey = "css_selector" } = {}) {
    const id = String(args[idKey] || "").trim();
    const selector = String(args[selectorKey] || "").trim();
    if (id) {
      const byId = document.getElementById(id.replace(/^#/, ""));
      if (byId) return byId;
      if (/^[#.[]/.test(id)) {
        try {
          const bySelector = document.querySelector(id);
          if (bySelector) return bySelector;
        } catch { /* not a selector */ }
      }
    }
    if (selector) {
      try {
        return document.querySelector(selector);
      } catch {
        throw new ToolFailure(`invalid CSS selector ${JSON.stringify(selector)}`);
      }
    }
    return null;
  }

  _describeTarget(args) {
    return args.element_id ? `#${String(args.element_id).replace(/^#/, "")}` : args.css_selector || "(no target)";
  }

  /** Dispatch talkwire:navigate then vanira:navigate with one shared detail; true when a listener handled it. */
  async _dispatchNavigate(path, targetUrl, signal) {
    const detail = { path, target_url: targetUrl, handled: false };
    for (const name of NAVIGATE_EVENTS) {
      if (detail.handled) break;
      window.dispatchEvent(new CustomEvent(name, { detail }));
    }
    const deadline = performance.now() + this.navigateWaitMs;
    while (!detail.handled && performance.now() < deadline) await sleep(25, signal);
    return detail.handled;
  }

  /** The `route` rule of the DOM presets: go to the route first (SPA listener), then wait for the element. */
  async _resolveTarget(ctx, required = true) {
    const { args, signal } = ctx;
    let node = this._find(args);
    const route = args.route ? String(args.route) : "";
    if (!node && route && !samePath(location.pathname, new URL(route, location.href).pathname)) {
      const target = new URL(route, location.href);
      const handled = await this._dispatchNavigate(target.pathname + target.search + target.hash, route, signal);
      if (!handled) console.warn("[Talkwire] No SPA listener handled vanira:navigate.");
    }
    const deadline = performance.now() + this.elementWaitMs;
    while (!node && (args.element_id || args.css_selector) && performance.now() < deadline) {
      await sleep(50, signal);
      node = this._find(args);
    }
    if (!node && required) {
      throw new ToolFailure(`element ${this._describeTarget(args)} not found on ${location.pathname}`);
    }
    if (node) node.scrollIntoView({ block: "center", inline: "nearest" });
    return node;
  }

  _outline(node, color, kind = "guide", label = null) {
    const rect = node.getBoundingClientRect();
    const box = el("div", {
      "data-talkwire-ui": "", "data-talkwire-outline": kind,
      style: {
        left: `${rect.left - 4}px`, top: `${rect.top - 4}px`, width: `${rect.width + 8}px`,
        height: `${rect.height + 8}px`, border: `3px solid ${color}`, boxShadow: `0 0 0 4px ${color}33`,
      },
    }, label ? el("span", { text: label }) : null);
    this.root.append(box);
    return box;
  }

  _cursor(kind, x, y, color, label) {
    let cursor = this.root.querySelector(`[data-talkwire-cursor="${kind}"]`);
    if (!cursor) {
      cursor = el("div", { "data-talkwire-ui": "", "data-talkwire-cursor": kind });
      cursor.innerHTML =
        `<svg width="22" height="22" viewBox="0 0 22 22"><path d="M2 2 L2 18 L7 13 L11 21 L14 19.5 L10 12 L17 12 Z" ` +
        `fill="${color}" stroke="#fff" stroke-width="1.5"/></svg>`;
      cursor.style.left = `${innerWidth / 2}px`;
      cursor.style.top = `${innerHeight / 2}px`;
      this.root.append(cursor);
    }
    cursor.querySelector("path").setAttribute("fill", color);
    cursor.querySelector("span")?.remove();
    if (label) cursor.append(el("span", { text: label, style: { background: color } }));
    cursor.getBoundingClientRect(); // commit the start position so the move animates
    cursor.style.left = `${x}px`;
    cursor.style.top = `${y}px`;
    return cursor;
  }

  _board() {
    let board = this.root.querySelector("[data-talkwire-board]");
    if (!board) {
      const canvas = el("canvas", { width: BOARD_W, height: BOARD_H, "data-talkwire-board-canvas": "" });
      board = el("div", { "data-talkwire-ui": "", "data-talkwire-board": "" }, canvas,
        el("div", { "data-talkwire-board-notes": "" }));
      this.root.append(board);
    }
    const canvas = board.querySelector("canvas");
    return { board, canvas, ctx: canvas.getContext("2d"), notes: board.querySelector("[data-talkwire-board-notes]") };
  }

  /** Visible interactive elements, tagged data-talkwire-scan-id="e1"… so point_at/outline_targets find them. */
  _scan(max) {
    for (const old of document.querySelectorAll("[data-talkwire-scan-id]")) old.removeAttribute("data-talkwire-scan-id");
    const out = [];
    for (const node of document.querySelectorAll(INTERACTIVE)) {
      if (out.length >= max) break;
      if (node.closest("[data-talkwire-ui]") || !isVisible(node)) continue;
      const rect = node.getBoundingClientRect();
      const id = `e${out.length + 1}`;
      node.setAttribute("data-talkwire-scan-id", id);
      out.push({
        id,
        tag: node.tagName.toLowerCase(),
        role: node.getAttribute("role") || (node.type && node.tagName === "INPUT" ? node.type : null),
        text: describe(node),
        element_id: node.id || null,
        css_selector: selectorFor(node),
        center_x: +((rect.left + rect.width / 2) / innerWidth).toFixed(4),
        center_y: +((rect.top + rect.height / 2) / innerHeight).toFixed(4),
        width: Math.round(rect.width),
        height: Math.round(rect.height),
      });
    }
    return out;
  }

  _scanTarget(id) {
    const key = String(id || "").trim();
    if (!key) return null;
    return document.querySelector(`[data-talkwire-scan-id="${cssEscape(key)}"]`) || document.getElementById(key.replace(/^#/, ""));
  }

  /**
   * Pixels of the viewport (or a region of it): from the live screen share when one runs, else the
   * page re-rendered through an SVG foreignObject (same-origin DOM and inline styles; cross-origin
   * images, iframes, video and canvas content are not drawn). Returns {blob, width, height, source}.
   */
  async _capture(region, maxWidth) {
    const rect = region || { x: 0, y: 0, width: innerWidth, height: innerHeight };
    const scale = Math.min(1, maxWidth / rect.width);
    const canvas = el("canvas", { width: Math.max(1, Math.round(rect.width * scale)), height: Math.max(1, Math.round(rect.height * scale)) });
    const g = canvas.getContext("2d");
    const screen = this.live.screen;
    if (screen && screen.video.videoWidth) {
      const sx = screen.video.videoWidth / innerWidth;
      const sy = screen.video.videoHeight / innerHeight;
      g.drawImage(screen.video, rect.x * sx, rect.y * sy, rect.width * sx, rect.height * sy, 0, 0, canvas.width, canvas.height);
      return { blob: await canvasToBlob(canvas), width: canvas.width, height: canvas.height, source: "screen_share" };
    }
    const clone = document.documentElement.cloneNode(true);
    for (const node of clone.querySelectorAll("script,[data-talkwire-ui],link[rel=stylesheet]")) node.remove();
    const live = document.querySelectorAll("input,textarea,select");
    const copies = clone.querySelectorAll("input,textarea,select");
    live.forEach((node, i) => {
      const copy = copies[i];
      if (!copy) return;
      if (node.type === "checkbox" || node.type === "radio") copy.toggleAttribute("checked", node.checked);
      else if (node instanceof HTMLTextAreaElement) copy.textContent = node.value;
      else if (node instanceof HTMLSelectElement) copy.querySelectorAll("option").forEach((o, j) => o.toggleAttribute("selected", j === node.selectedIndex));
      else copy.setAttribute("value", node.value);
    });
    const docW = Math.max(document.documentElement.scrollWidth, innerWidth);
    const docH = Math.max(document.documentElement.scrollHeight, innerHeight);
    const html = new XMLSerializer().serializeToString(clone);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${docW}" height="${docH}">` +
      `<foreignObject x="0" y="0" width="${docW}" height="${docH}">${html}</foreignObject></svg>`;
    const image = new Image();
    image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
    await image.decode();
    g.fillStyle = getComputedStyle(document.body).backgroundColor || "#fff";
    if (g.fillStyle === "rgba(0, 0, 0, 0)") g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(image, rect.x + scrollX, rect.y + scrollY, rect.width, rect.height, 0, 0, canvas.width, canvas.height);
    return { blob: await canvasToBlob(canvas), width: canvas.width, height: canvas.height, source: "dom_render" };
  }

  async _uploadCapture(ctx, capture, reason, message, name) {
    const file = new File([capture.blob], name, { type: "image/jpeg" });
    const uploaded = await abortable(Promise.resolve(this.client.uploadMedia(file, reason, message)), ctx.signal);
    return uploaded || {};
  }

  async _startLive(kind, ctx) {
    const { args, agent } = ctx;
    this._stopLive(kind);
    const fps = Math.min(Math.max(asNumber(agent.target_fps ?? args.target_fps, 1), 0.1), 5);
    const maxWidth = asNumber(args.max_width, kind === "camera" ? 640 : 1280);
    const reason = String(args.reason || (kind === "camera" ? "camera_capture" : "screen_capture"));
    let stream;
    try {
      stream = kind === "camera"
        ? await navigator.mediaDevices.getUserMedia({ video: { facingMode: args.facing_mode || "environment" }, audio: false })
        : await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false, preferCurrentTab: Boolean(args.prefer_current_tab) });
    } catch (err) {
      throw new ToolFailure(`${kind === "camera" ? "camera" : "screen share"} unavailable: ${err.name || err.message}`);
    }
    const video = el("video", { autoplay: true, muted: true, playsinline: true, "data-talkwire-ui": "",
      "data-talkwire-preview": kind, hidden: args.show_preview === false });
    video.srcObject = stream;
    this.root.append(video);
    await video.play().catch(() => {});
    const canvas = document.createElement("canvas");
    const state = { stream, video, timer: null, stopTimer: null, frames: 0, reason };
    const tick = async () => {
      if (!video.videoWidth) return;
      const scale = Math.min(1, maxWidth / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      try {
        const image = await blobToBase64(await canvasToBlob(canvas, "image/jpeg", 0.7));
        if (this.live[kind] !== state) return;
        if (this._event("client_media_frame", { reason, image, width: canvas.width, height: canvas.height, source: kind })) state.frames += 1;
      } catch (err) {
        console.warn("[Talkwire] frame capture failed", err);
      }
    };
    state.timer = setInterval(tick, 1000 / fps);
    const scope = agent.scope || args.scope;
    const seconds = asNumber(agent.duration_sec ?? args.duration_sec, 0);
    if (scope === "timed" && seconds > 0) state.stopTimer = setTimeout(() => this._stopLive(kind), seconds * 1000);
    for (const track of stream.getVideoTracks()) track.addEventListener("ended", () => this._stopLive(kind));
    this.live[kind] = state;
    this._event(kind === "camera" ? "client_live_camera_started" : "client_live_screen_started", { reason, target_fps: fps, max_width: maxWidth });
    tick();
    return { status: "success", streaming: true, reason, target_fps: fps };
  }

  _stopLive(kind) {
    const state = this.live[kind];
    if (!state) return false;
    this.live[kind] = null;
    clearInterval(state.timer);
    clearTimeout(state.stopTimer);
    state.stream.getTracks().forEach((t) => t.stop());
    state.video.remove();
    this._event(kind === "camera" ? "client_live_camera_stopped" : "client_live_screen_stopped", { frames_sent: state.frames });
    return true;
  }

  _inkLayer() {
    let svg = this.root.querySelector("svg[data-talkwire-ink]");
    if (!svg) {
      svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("data-talkwire-ui", "");
      svg.setAttribute("data-talkwire-ink", "");
      svg.setAttribute("width", "100%");
      svg.setAttribute("height", "100%");
      Object.assign(svg.style, { position: "fixed", inset: "0", pointerEvents: "none", zIndex: "2147482300" });
      this.root.append(svg);
    }
    return svg;
  }

  _inkPath(svg, d, color, animate) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "4");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("stroke-linejoin", "round");
    path.setAttribute("data-talkwire-stroke", "");
    svg.append(path);
    if (animate && typeof path.getTotalLength === "function") {
      const length = path.getTotalLength();
      path.style.strokeDasharray = `${length}`;
      path.style.strokeDashoffset = `${length}`;
      path.getBoundingClientRect();
      path.style.transition = "stroke-dashoffset .7s ease";
      path.style.strokeDashoffset = "0";
    }
    return path;
  }

  _clearOverlays(kinds) {
    for (const node of this.root.querySelectorAll("[data-talkwire-ui]")) {
      const kind = node.getAttribute("data-talkwire-outline") || node.getAttribute("data-talkwire-cursor") ||
        (node.hasAttribute("data-talkwire-ink") ? "ink" : null) || (node.hasAttribute("data-talkwire-ripple") ? "ripple" : null);
      if (kind && kinds.includes(kind)) node.remove();
    }
  }

  // ---- the presets ----------------------------------------------------------------------------------

  get handlers() {
    return PresetRenderer.handlers;
  }
}

PresetRenderer.handlers = {
  async vanira_form(ctx) {
    const { args, agent, signal } = ctx;
    const labels = String(args.fields || "Name, Email, Phone").split(",").map((s) => s.trim()).filter(Boolean);
    const { card, close } = this._modal(ctx, "vanira_form", args.title || "Enter your details", agent.reason || args.description);
    const form = el("form", { "data-talkwire-form": "" });
    const used = new Set();
    for (const label of labels) {
      let key = slug(label);
      while (used.has(key)) key += "_";
      used.add(key);
      const type = /e-?mail/i.test(label) ? "email" : /phone|mobile|tel/i.test(label) ? "tel" : /date|birth/i.test(label) ? "date" : "text";
      const id = `talkwire-${ctx.call.tool_call_id}-${key}`;
      form.append(el("label", { for: id, text: label }),
        el("input", { id, name: key, type, "data-talkwire-field": label, autocomplete: "on" }));
    }
    card.append(form);
    const done = new Promise((resolve) => {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const values = {};
        for (const input of form.querySelectorAll("input")) values[input.getAttribute("data-talkwire-field")] = input.value;
        resolve({ status: "success", values });
      });
    });
    const row = el("div", { "data-talkwire-actions": "" });
    const cancelled = new Promise((resolve) => {
      row.append(el("button", { type: "button", "data-talkwire-action": "cancel", onclick: () => resolve({ status: "cancelled", reason: "user_dismissed" }) }, "Cancel"));
    });
    row.append(el("button", { type: "submit", "data-talkwire-action": "submit", "data-talkwire-primary": true }, args.submit_label || "Submit"));
    form.append(row);
    form.querySelector("input")?.focus();
    try {
      return await abortable(Promise.race([done, cancelled]), signal);
    } finally {
      close();
    }
  },

  async vanira_calendar(ctx) {
    const { args, agent, signal } = ctx;
    const { card, close } = this._modal(ctx, "vanira_calendar", args.title || "Select a Date & Time", agent.reason);
    const timezone = args.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
    const today = new Date().toISOString().slice(0, 10);
    const dateInput = el("input", { type: "date", min: today, value: today, "data-talkwire-date": "" });
    const slotsBox = el("div", { "data-talkwire-slots": "", style: { display: "flex", flexWrap: "wrap", gap: "6px", marginTop: "6px" } });
    const status = el("p", { "data-talkwire-slots-status": "", style: { margin: "6px 0 0" } });
    card.append(el("label", { text: `Date (${timezone})` }), dateInput);
    let timeInput = null;
    let chosen = null;
    const loadSlots = async () => {
      slotsBox.replaceChildren();
      chosen = null;
      status.textContent = "Loading available times…";
      const url = String(args.slots_api_url)
        .replaceAll("{{date}}", encodeURIComponent(dateInput.value))
        .replaceAll("{{timezone}}", encodeURIComponent(timezone));
      let headers = {};
      try {
        headers = JSON.parse(args.slots_api_headers || "{}");
      } catch { /* not JSON: no extra headers */ }
      const method = String(args.slots_api_method || "GET").toUpperCase();
      try {
        const response = await fetch(url, {
          method, headers, signal,
          body: method === "GET" || method === "HEAD" ? undefined
            : String(args.slots_api_body || "{}").replaceAll("{{date}}", dateInput.value).replaceAll("{{timezone}}", timezone),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const data = await response.json();
        const slots = Array.isArray(data) ? data : data.slots || data.available_slots || data.times || [];
        status.textContent = slots.length ? "" : "No free times on this day.";
        for (const slot of slots) {
          const value = typeof slot === "string" ? slot : slot.time || slot.start || slot.value || slot.label;
          const label = typeof slot === "string" ? slot : slot.label || value;
          if (!value) continue;
          const button = el("button", { type: "button", "data-talkwire-slot": value, "aria-pressed": "false" }, label);
          button.addEventListener("click", () => {
            for (const b of slotsBox.querySelectorAll("button")) b.setAttribute("aria-pressed", "false");
            button.setAttribute("aria-pressed", "true");
            chosen = typeof slot === "string" ? { time: slot } : slot;
          });
          slotsBox.append(button);
        }
      } catch (err) {
        if (signal.aborted) return;
        status.textContent = `Could not load times (${err.message}).`;
      }
    };
    if (args.slots_api_url) {
      card.append(slotsBox, status);
      dateInput.addEventListener("change", loadSlots);
      loadSlots();
    } else {
      timeInput = el("input", { type: "time", value: "09:00", step: 900, "data-talkwire-time": "" });
      card.append(el("label", { text: "Time" }), timeInput, status);
    }
    try {
      for (;;) {
        const action = await abortable(this._actions(card, [
          { action: "cancel", label: "Cancel" }, { action: "confirm", label: "Confirm", primary: true },
        ]), signal);
        if (action === "cancel") return { status: "cancelled", reason: "user_dismissed" };
        if (dateInput.value && timeInput) return { status: "success", date: dateInput.value, time: timeInput.value, timezone };
        if (dateInput.value && chosen) {
          return { status: "success", date: dateInput.value, time: chosen.time || chosen.start || chosen.value, slot: chosen, timezone };
        }
        status.textContent = dateInput.value ? "Pick a time first." : "Pick a date first.";
        card.querySelector("[data-talkwire-actions]")?.remove();
      }
    } finally {
      close();
    }
  },

  async vanira_upload(ctx) {
    const { args, agent, signal } = ctx;
    const { card, close } = this._modal(ctx, "vanira_upload", args.title || "Upload a File", agent.reason || args.description);
    if (agent.reason && args.description) card.append(el("p", { text: args.description }));
    const input = el("input", { type: "file", accept: args.accept || null, "data-talkwire-file": "" });
    const status = el("p", { "data-talkwire-upload-status": "" });
    card.append(input, status);
    const picked = new Promise((resolve) => input.addEventListener("change", () => input.files[0] && resolve(input.files[0])));
    const cancelled = this._actions(card, [{ action: "cancel", label: "Cancel" }]);
    try {
      const file = await abortable(Promise.race([picked, cancelled]), signal);
      if (file === "cancel") return { status: "cancelled", reason: "user_dismissed" };
      status.textContent = `Uploading ${file.name}…`;
      const message = agent.reason || args.description || "";
      const uploaded = await abortable(Promise.resolve(this.client.uploadMedia(file, args.reason || "upload", message)), signal);
      return { status: "success", media_id: uploaded?.media_id ?? null, url: uploaded?.url ?? null, file_name: file.name, size: file.size, mime_type: file.type || null };
    } finally {
      close();
    }
  },

  async vanira_camera(ctx) {
    const { args, agent, signal } = ctx;
    const { card, close } = this._modal(ctx, "vanira_camera", args.title || "Take a Photo", agent.reason || args.description);
    let stream;
    try {
      stream = await abortable(navigator.mediaDevices.getUserMedia({ video: { facingMode: args.facing_mode || "environment" }, audio: false }), signal);
    } catch (err) {
      close();
      if (err instanceof Interrupted) throw err;
      throw new ToolFailure(`camera unavailable: ${err.name || err.message}`);
    }
    const video = el("video", { autoplay: true, muted: true, playsinline: true, "data-talkwire-camera": "", style: { width: "100%", borderRadius: "8px", background: "#000" } });
    video.srcObject = stream;
    card.append(video);
    await video.play().catch(() => {});
    try {
      const action = await abortable(this._actions(card, [
        { action: "cancel", label: "Cancel" }, { action: "capture", label: "Capture", primary: true },
      ]), signal);
      if (action === "cancel") return { status: "cancelled", reason: "user_dismissed" };
      const canvas = el("canvas", { width: video.videoWidth || 640, height: video.videoHeight || 480 });
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      const blob = await canvasToBlob(canvas);
      const uploaded = await this._uploadCapture(ctx, { blob }, args.reason || "camera_capture", agent.reason || args.description || "", "camera.jpg");
      return { status: "success", media_id: uploaded.media_id ?? null, url: uploaded.url ?? null, width: canvas.width, height: canvas.height };
    } finally {
      stream.getTracks().forEach((t) => t.stop());
      close();
    }
  },

  async vanira_navigate(ctx) {
    const { args, agent, signal } = ctx;
    const targetUrl = String(args.target_url || agent.target_url || "").trim();
    if (!targetUrl) throw new ToolFailure("target_url is empty");
    ctx.setInterruptInfo({ target_url: targetUrl });
    let target;
    try {
      target = new URL(targetUrl, location.href);
    } catch {
      throw new ToolFailure(`invalid target_url ${JSON.stringify(targetUrl)}`);
    }
    if (target.origin !== location.origin) {
      const opened = window.open(target.href, "_blank");
      if (opened) {
        opened.opener = null;
        return { status: "success", navigated_to: target.href, target_url: targetUrl, opened_in_new_tab: true };
      }
      // A tool call is no user gesture, so browsers may block the tab: offer the link instead.
      const { card, close } = this._modal(ctx, "vanira_navigate", "Open link", target.href);
      card.append(el("div", { "data-talkwire-actions": "" },
        el("button", { type: "button", "data-talkwire-action": "dismiss", onclick: () => close() }, "Dismiss"),
        el("a", { href: target.href, target: "_blank", rel: "noopener", "data-talkwire-link": "", onclick: () => close() }, "Open in a new tab")));
      setTimeout(close, 30_000);
      return { status: "success", navigated_to: null, target_url: targetUrl, opened_in_new_tab: false, link_shown: true,
        message: "The browser blocked opening a new tab; the user was shown a link to open it." };
    }
    const path = target.pathname + target.search + target.hash;
    const handled = await this._dispatchNavigate(path, targetUrl, signal);
    if (!handled) {
      console.warn("[Talkwire] No SPA listener handled vanira:navigate.");
      return { status: "cancelled", reason: "no_listener", target_url: targetUrl, message: "No SPA listener handled vanira:navigate." };
    }
    return { status: "success", navigated_to: path, target_url: targetUrl };
  },

  async vanira_highlight_element(ctx) {
    const { args, signal } = ctx;
    const node = await this._resolveTarget(ctx);
    const box = this._outline(node, args.color || "#10B981", "highlight");
    const ms = asNumber(args.duration_ms, 4000);
    setTimeout(() => box.remove(), ms);
    signal.addEventListener("abort", () => box.remove(), { once: true });
    return { status: "success", highlighted: this._describeTarget(args), text: describe(node), duration_ms: ms };
  },

  async vanira_click_element(ctx) {
    const node = await this._resolveTarget(ctx);
    node.focus?.();
    node.click();
    return { status: "success", clicked: this._describeTarget(ctx.args), text: describe(node), route: location.pathname };
  },

  async vanira_select_option(ctx) {
    const { args, agent } = ctx;
    const node = await this._resolveTarget(ctx);
    const wantValue = agent.option_value ?? args.option_value;
    const wantLabel = agent.option_label ?? args.option_label;
    if (wantValue == null && wantLabel == null) throw new ToolFailure("give option_value or option_label");
    const norm = (s) => String(s ?? "").trim().toLowerCase();
    const allowed = Array.isArray(args.allowed_options) ? args.allowed_options.map(norm) : null;
    if (node instanceof HTMLSelectElement) {
      const option = [...node.options].find((o) => (wantValue != null && norm(o.value) === norm(wantValue)) ||
        (wantLabel != null && norm(o.textContent) === norm(wantLabel)));
      if (!option) throw new ToolFailure(`no option ${JSON.stringify(wantValue ?? wantLabel)} in ${this._describeTarget(args)}`);
      if (allowed && !allowed.includes(norm(option.value))) throw new ToolFailure(`option ${option.value} is not allowed`);
      setNativeValue(node, option.value);
      node.dispatchEvent(new Event("change", { bubbles: true }));
      return { status: "success", value: option.value, label: option.textContent.trim() };
    }
    node.click(); // a custom dropdown: open it, then pick the option by value or text
    const deadline = performance.now() + 2000;
    let option = null;
    while (!option && performance.now() < deadline) {
      option = [...document.querySelectorAll("[role=option],[data-value],li")].find((o) => isVisible(o) &&
        ((wantValue != null && norm(o.getAttribute("data-value")) === norm(wantValue)) ||
          (wantLabel != null && norm(o.textContent) === norm(wantLabel)) ||
          (wantValue != null && norm(o.textContent) === norm(wantValue))));
      if (!option) await sleep(50, ctx.signal);
    }
    if (!option) throw new ToolFailure(`option ${JSON.stringify(wantValue ?? wantLabel)} not found in the dropdown`);
    const value = option.getAttribute("data-value") || option.textContent.trim();
    if (allowed && !allowed.includes(norm(value))) throw new ToolFailure(`option ${value} is not allowed`);
    option.click();
    return { status: "success", value, label: option.textContent.trim() };
  },

  async vanira_set_date(ctx) {
    const { args, agent } = ctx;
    const node = await this._resolveTarget(ctx);
    const iso = agent.date ?? args.date;
    if (!isTextField(node)) throw new ToolFailure(`${this._describeTarget(args)} is not an input`);
    const native = node.type === "date" || args.input_kind === "date";
    const value = native ? formatDate(iso, "YYYY-MM-DD") : formatDate(iso, args.text_format);
    node.focus();
    setNativeValue(node, value);
    node.dispatchEvent(new Event("change", { bubbles: true }));
    return { status: "success", value, date: String(iso).slice(0, 10) };
  },

  async vanira_type_text(ctx) {
    const { args, agent, signal } = ctx;
    const text = String(agent.text_to_type ?? args.text_to_type ?? "");
    if (!text) throw new ToolFailure("text_to_type is empty");
    const hasTarget = Boolean(args.element_id || args.css_selector);
    const node = hasTarget ? await this._resolveTarget(ctx) : this._board().notes; // no target: the chalkboard's notes
    const delay = Math.max(0, asNumber(args.delay_ms, 50));
    const replace = args.typing_mode === "replace";
    node.focus?.();
    if (isTextField(node)) {
      let value = replace ? "" : node.value;
      if (!replace && value && !/\s$/.test(value)) value += " ";
      setNativeValue(node, value);
      for (const ch of text) {
        value += ch;
        setNativeValue(node, value);
        if (delay) await sleep(delay, signal);
      }
      node.dispatchEvent(new Event("change", { bubbles: true }));
    } else {
      if (replace) node.textContent = "";
      else if (node.textContent && !/\s$/.test(node.textContent)) node.append(node.hasAttribute("data-talkwire-board-notes") ? "\n" : " ");
      for (const ch of text) {
        node.append(ch);
        if (delay) await sleep(delay, signal);
      }
      node.normalize();
      node.dispatchEvent(new Event("input", { bubbles: true }));
    }
    return { status: "success", typed: text, target: hasTarget ? this._describeTarget(args) : "chalkboard" };
  },

  async vanira_erase_text(ctx) {
    const { args, agent, signal } = ctx;
    const hasTarget = Boolean(args.element_id || args.css_selector);
    const node = hasTarget ? await this._resolveTarget(ctx) : this._board().notes;
    const mode = agent.mode || args.mode || "all";
    const count = Math.max(1, Math.round(asNumber(agent.num_words ?? args.num_words, 1)));
    const field = isTextField(node);
    const current = field ? node.value : node.textContent;
    let next = "";
    if (mode === "words") {
      const words = current.replace(/\s+$/, "").split(/(\s+)/);
      let removed = 0;
      while (words.length && removed < count) {
        const w = words.pop();
        if (w.trim()) removed += 1;
      }
      next = words.join("").replace(/\s+$/, "");
    }
    const delay = Math.max(0, asNumber(args.delay_ms, 50));
    for (let text = current; text.length > next.length;) {
      text = text.slice(0, -1);
      if (field) setNativeValue(node, text);
      else node.textContent = text;
      if (delay) await sleep(Math.min(delay, 20), signal);
    }
    if (field) node.dispatchEvent(new Event("change", { bubbles: true }));
    return { status: "success", erased: mode === "words" ? `${count} word(s)` : "all", remaining: next };
  },

  async vanira_erase_draw() {
    const { canvas, ctx } = this._board();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return { status: "success", cleared: "drawings", notes_kept: true };
  },

  async vanira_draw(ctx) {
    const { args, agent, signal } = ctx;
    const { canvas, ctx: g } = this._board();
    const a = agent;
    if (a.clear_old_diagrams_on_board || a.clear_drawings) g.clearRect(0, 0, canvas.width, canvas.height);
    const shape = a.shape_type || (a.radius != null ? "circle" : a.label_text ? "label" : a.p3_x != null ? "triangle" : "line");
    const n = (v, d) => asNumber(v, d);
    const duration = Math.max(0, asNumber(args.shape_duration_ms, 2000));
    g.strokeStyle = "#f8fafc";
    g.fillStyle = "#f8fafc";
    g.lineWidth = 4;
    g.lineCap = "round";
    g.font = "28px 'Comic Sans MS', cursive, sans-serif";
    const segments = [];
    if (shape === "line") segments.push([[n(a.p1_x, 100), n(a.p1_y, 250)], [n(a.p2_x, 700), n(a.p2_y, 250)]]);
    else if (shape === "triangle" || shape === "rectangle") {
      const p1 = [n(a.p1_x, 400), n(a.p1_y, 80)];
      const p2 = [n(a.p2_x, 120), n(a.p2_y, 420)];
      const p3 = [n(a.p3_x, 680), n(a.p3_y, 420)];
      const pts = shape === "triangle" ? [p1, p2, p3, p1] : [p1, [p2[0], p1[1]], p2, [p1[0], p2[1]], p1];
      for (let i = 0; i < pts.length - 1; i++) segments.push([pts[i], pts[i + 1]]);
    } else if (shape === "circle") {
      const cx = n(a.center_x, 400), cy = n(a.center_y, 250), r = n(a.radius, 90);
      const steps = 48;
      for (let i = 0; i < steps; i++) {
        const t0 = (i / steps) * 2 * Math.PI, t1 = ((i + 1) / steps) * 2 * Math.PI;
        segments.push([[cx + r * Math.cos(t0), cy + r * Math.sin(t0)], [cx + r * Math.cos(t1), cy + r * Math.sin(t1)]]);
      }
    } else if (shape === "label") {
      g.fillText(String(a.label_text ?? ""), n(a.label_x, 400), n(a.label_y, 250));
      return { status: "success", shape, text: String(a.label_text ?? "") };
    } else {
      throw new ToolFailure(`unknown shape_type ${JSON.stringify(shape)}`);
    }
    const per = segments.length ? duration / segments.length : 0;
    for (const [[x0, y0], [x1, y1]] of segments) {
      g.beginPath();
      g.moveTo(x0, y0);
      g.lineTo(x1, y1);
      g.stroke();
      if (per >= 4) await sleep(per, signal);
    }
    if (a.label_text) g.fillText(String(a.label_text), n(a.label_x, segments[0][0][0]), n(a.label_y, segments[0][0][1] - 12));
    await sleep(asNumber(args.shape_gap_ms, 80), signal);
    return { status: "success", shape, board: { width: BOARD_W, height: BOARD_H } };
  },

  async vanira_live_vision(ctx) {
    return this._startLive("camera", ctx);
  },

  async vanira_close_live_camera() {
    return { status: "success", was_streaming: this._stopLive("camera") };
  },

  async vanira_live_screen(ctx) {
    return this._startLive("screen", ctx);
  },

  async vanira_close_live_screen() {
    return { status: "success", was_streaming: this._stopLive("screen") };
  },

  async vanira_clip_region(ctx) {
    const { args, agent, signal } = ctx;
    const minPx = asNumber(args.min_region_px, 24);
    const layer = el("div", { "data-talkwire-ui": "", "data-talkwire-clip": "", "data-talkwire-tool-call-id": ctx.call.tool_call_id },
      el("p", { text: `${agent.prompt ? `${agent.prompt} — ` : ""}${args.hint || "Drag to select an area — release to clip."} (Esc cancels)` }));
    const box = el("div", { hidden: true });
    layer.append(box);
    this.root.append(layer);
    const region = await abortable(new Promise((resolve) => {
      let start = null;
      const rectOf = (e) => ({
        x: Math.min(start.x, e.clientX), y: Math.min(start.y, e.clientY),
        width: Math.abs(e.clientX - start.x), height: Math.abs(e.clientY - start.y),
      });
      layer.addEventListener("pointerdown", (e) => {
        start = { x: e.clientX, y: e.clientY };
        layer.setPointerCapture?.(e.pointerId);
      });
      layer.addEventListener("pointermove", (e) => {
        if (!start) return;
        const r = rectOf(e);
        Object.assign(box.style, { left: `${r.x}px`, top: `${r.y}px`, width: `${r.width}px`, height: `${r.height}px` });
        box.hidden = false;
      });
      layer.addEventListener("pointerup", (e) => {
        if (!start) return;
        const r = rectOf(e);
        start = null;
        if (r.width >= minPx && r.height >= minPx) resolve(r);
        else box.hidden = true;
      });
      const onKey = (e) => {
        if (e.key === "Escape") {
          document.removeEventListener("keydown", onKey);
          resolve(null);
        }
      };
      document.addEventListener("keydown", onKey);
    }), signal).finally(() => layer.remove());
    if (!region) return { status: "cancelled", reason: "user_dismissed" };
    const text = [...document.querySelectorAll("body *")].filter((node) => {
      if (node.closest("[data-talkwire-ui]") || node.children.length) return false;
      const r = node.getBoundingClientRect();
      return r.left < region.x + region.width && r.right > region.x && r.top < region.y + region.height && r.bottom > region.y;
    }).map((node) => node.textContent.trim()).filter(Boolean).join(" ").slice(0, 2000);
    const out = { status: "success", region, prompt: agent.prompt || null, text };
    try {
      const shot = await this._capture(region, 1280);
      const uploaded = await this._uploadCapture(ctx, shot, agent.reason || args.reason || "page_clip", agent.prompt || "Clipped page region", "clip.jpg");
      Object.assign(out, { media_id: uploaded.media_id ?? null, url: uploaded.url ?? null, source: shot.source });
      if (shot.source === "dom_render") out.note = "Rendered from the page's DOM: cross-origin images, video, canvas and iframes are not included.";
    } catch (err) {
      if (err instanceof Interrupted) throw err;
      out.note = `No image: the region could not be rendered (${err.message || err.name}); the text inside it is included.`;
    }
    return out;
  },

  async vanira_tab_screenshot(ctx) {
    const { args, agent } = ctx;
    const maxWidth = asNumber(agent.max_width ?? args.max_width, 1280);
    const elements = this._scan(Math.round(asNumber(agent.max_elements ?? args.max_elements, 80)));
    const out = { status: "success", url: location.href, title: document.title, viewport: { width: innerWidth, height: innerHeight }, elements };
    try {
      const shot = await this._capture(null, maxWidth);
      const uploaded = await this._uploadCapture(ctx, shot, agent.reason || args.reason || "tab_screenshot", agent.prompt || "Tab screenshot", "tab.jpg");
      Object.assign(out, { media_id: uploaded.media_id ?? null, image_url: uploaded.url ?? null, width: shot.width, height: shot.height, source: shot.source });
      if (shot.source === "dom_render") out.note = "Rendered from the page's DOM: cross-origin images, video, canvas and iframes are not included.";
    } catch (err) {
      if (err instanceof Interrupted) throw err;
      out.note = `No image: the tab could not be rendered (${err.message || err.name}); the element list is complete.`;
    }
    return out;
  },

  async vanira_screen_ink(ctx) {
    const { args, agent } = ctx;
    const a = { ...args, ...agent };
    const svg = this._inkLayer();
    if (a.clear_before) svg.replaceChildren();
    const color = a.color || "#f97316";
    const animate = a.animate !== false;
    const toPx = ([x, y]) => {
      const p = this._point(x, y);
      if (!p) throw new ToolFailure("points must be [x, y] pairs");
      return p;
    };
    const strokeD = (points, close) => {
      const px = points.map(toPx);
      return `M ${px.map((p) => `${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" L ")}${close ? " Z" : ""}`;
    };
    const paths = [];
    const parse = (v) => (typeof v === "string" ? JSON.parse(v) : v);
    if (a.css_selector) {
      const node = this._find({ css_selector: a.css_selector });
      if (!node) throw new ToolFailure(`element ${a.css_selector} not found`);
      const r = node.getBoundingClientRect();
      paths.push(`M ${r.left - 6} ${r.top - 6} H ${r.right + 6} V ${r.bottom + 6} H ${r.left - 6} Z`);
    }
    if (a.strokes) for (const s of parse(a.strokes)) paths.push(strokeD(s.points || s, s.close ?? a.close));
    if (a.points) paths.push(strokeD(parse(a.points), a.close));
    if (a.path_d) paths.push(String(a.path_d));
    for (const d of paths) this._inkPath(svg, d, color, animate);
    if (a.interactive) {
      svg.style.pointerEvents = "auto";
      let current = null;
      let pts = [];
      svg.onpointerdown = (e) => {
        pts = [[e.clientX, e.clientY]];
        current = this._inkPath(svg, `M ${e.clientX} ${e.clientY}`, color, false);
      };
      svg.onpointermove = (e) => {
        if (!current) return;
        pts.push([e.clientX, e.clientY]);
        current.setAttribute("d", `M ${pts.map((p) => p.join(" ")).join(" L ")}`);
      };
      svg.onpointerup = () => { current = null; };
    }
    if (!paths.length && !a.interactive) throw new ToolFailure("nothing to draw: give strokes, points, path_d or css_selector");
    return { status: "success", strokes: paths.length, interactive: Boolean(a.interactive) };
  },

  async vanira_screen_cursor(ctx) {
    const { args, agent } = ctx;
    const a = { ...args, ...agent };
    let p = this._point(a.x, a.y);
    if (a.css_selector) {
      const node = this._find({ css_selector: a.css_selector });
      if (!node) throw new ToolFailure(`element ${a.css_selector} not found`);
      node.scrollIntoView({ block: "center" });
      const r = node.getBoundingClientRect();
      p = { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    }
    if (!p) throw new ToolFailure("give x and y, or css_selector");
    const cursor = this._cursor("screen", p.x, p.y, a.color || "#f97316", a.label);
    const ms = asNumber(a.duration_ms, 2500);
    if (ms > 0) setTimeout(() => cursor.isConnected && cursor.remove(), ms + 500);
    return { status: "success", x: Math.round(p.x), y: Math.round(p.y) };
  },

  async vanira_screen_click(ctx) {
    const { args, agent } = ctx;
    const a = { ...args, ...agent };
    let p = this._point(a.x, a.y);
    let node = null;
    if (a.css_selector) {
      node = this._find({ css_selector: a.css_selector });
      if (!node) throw new ToolFailure(`element ${a.css_selector} not found`);
      node.scrollIntoView({ block: "center" });
      const r = node.getBoundingClientRect();
      p = { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    }
    if (!p) throw new ToolFailure("give x and y, or css_selector");
    if (a.show_ripple !== false) {
      const ripple = el("div", { "data-talkwire-ui": "", "data-talkwire-ripple": "", style: { left: `${p.x}px`, top: `${p.y}px`, border: `3px solid ${a.color || "#f97316"}` } });
      this.root.append(ripple);
      setTimeout(() => ripple.remove(), 700);
    }
    let clicked = null;
    if (a.perform_click !== false) {
      node = node || document.elementsFromPoint(p.x, p.y).find((n) => !n.closest("[data-talkwire-ui]")) || null;
      if (node) {
        node.click();
        clicked = { tag: node.tagName.toLowerCase(), text: describe(node), css_selector: selectorFor(node) };
      }
    }
    return { status: "success", x: Math.round(p.x), y: Math.round(p.y), clicked };
  },

  async vanira_clear_screen_overlay() {
    this._clearOverlays(["ink", "screen", "ripple", "highlight"]);
    return { status: "success", cleared: "screen_overlay" };
  },

  async vanira_page_scan(ctx) {
    const { args, agent } = ctx;
    const elements = this._scan(Math.round(asNumber(agent.max_elements ?? args.max_elements, 64)));
    return { status: "success", url: location.href, path: location.pathname, title: document.title, prompt: agent.prompt || null, count: elements.length, elements };
  },

  async vanira_point_at(ctx) {
    const { args, agent } = ctx;
    const id = agent.element_id ?? args.element_id;
    const node = this._scanTarget(id);
    if (!node) throw new ToolFailure(`no element ${JSON.stringify(id)}: call page_scan first and use its ids`);
    node.scrollIntoView({ block: "center", inline: "nearest" });
    const r = node.getBoundingClientRect();
    const color = args.color || "#f97316";
    this._clearOverlays(["point"]);
    if (args.outline !== false) this._outline(node, color, "point");
    const x = r.left + Math.min(r.width / 2, 24);
    const y = r.top + r.height / 2;
    this._cursor("guide", x, y, color, agent.label ?? args.label);
    return { status: "success", element_id: id, text: describe(node), x: Math.round(x), y: Math.round(y) };
  },

  async vanira_outline_targets(ctx) {
    const { args, agent } = ctx;
    let targets = agent.targets ?? args.targets ?? [];
    if (typeof targets === "string") {
      try {
        targets = JSON.parse(targets);
      } catch {
        targets = targets.split(",");
      }
    }
    if (!Array.isArray(targets)) targets = [targets];
    const outlined = [];
    const missing = [];
    this._clearOverlays(["outline"]);
    for (const id of targets.map((t) => String(t).trim()).filter(Boolean)) {
      const node = this._scanTarget(id);
      if (!node) {
        missing.push(id);
        continue;
      }
      const box = this._outline(node, args.color || "#f97316", "outline");
      if (args.animate !== false) box.animate?.([{ opacity: 0 }, { opacity: 1 }], { duration: 300 });
      outlined.push(id);
    }
    if (!outlined.length && missing.length) throw new ToolFailure(`none of ${missing.join(", ")} found: call page_scan first`);
    return { status: "success", outlined, missing };
  },

  async vanira_clear_guide() {
    this._clearOverlays(["guide", "point", "outline"]);
    return { status: "success", cleared: "guide" };
  },
};

export default PresetRenderer;
