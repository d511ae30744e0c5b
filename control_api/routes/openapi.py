"""`GET /openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (a self-contained page that renders it).

Both are public: the document describes the API, not anyone's data. The page loads no CDN asset, so it works
on an offline or air-gapped install; a small inline script fetches /openapi.json and renders it.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from control_api.openapi import build_document


async def openapi_json(request: Request) -> JSONResponse:
    app = request.app
    document = getattr(app.state, "openapi_document", None)
    if document is None:
        document = build_document(app.routes, server_url=request.app.state.settings.base_url)
        app.state.openapi_document = document
    return JSONResponse(document)


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Talkwire API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1f2330;background:#fafafa}
header{padding:18px 28px;background:#1f2330;color:#fff}header h1{margin:0;font-size:20px}
main{max-width:1100px;margin:0 auto;padding:16px 28px}
h2{margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
details{background:#fff;border:1px solid #e2e2e2;border-radius:6px;margin:6px 0}
summary{cursor:pointer;padding:8px 12px;font-family:ui-monospace,monospace}
.m{display:inline-block;width:64px;font-weight:700}.GET{color:#0a7}.POST{color:#36c}.PUT{color:#a60}
.PATCH{color:#a60}.DELETE{color:#c33}.s{color:#555;font-family:system-ui,sans-serif;margin-left:8px}
.body{padding:0 14px 12px}pre{background:#f3f3f6;padding:8px;border-radius:4px;overflow:auto;font-size:12.5px}
table{border-collapse:collapse}td{padding:2px 10px 2px 0;vertical-align:top}code{font-size:13px}
</style></head><body>
<header><h1>Talkwire control API</h1><div id="desc"></div></header>
<main id="root">Loading <a href="openapi.json">openapi.json</a>…</main>
<script>
(function () {
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function resolve(doc, schema, depth) {
    if (!schema || depth > 6) return schema;
    if (schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split("/").pop()], depth + 1);
    var out = {};
    Object.keys(schema).forEach(function (k) {
      var v = schema[k];
      if (k === "properties") {
        out[k] = {};
        Object.keys(v).forEach(function (p) { out[k][p] = resolve(doc, v[p], depth + 1); });
      } else if (k === "items" || k === "additionalProperties") {
        out[k] = typeof v === "object" ? resolve(doc, v, depth + 1) : v;
      } else if (k === "anyOf" || k === "oneOf" || k === "allOf") {
        out[k] = v.map(function (s) { return resolve(doc, s, depth + 1); });
      } else { out[k] = v; }
    });
    return out;
  }
  function pre(obj) { return el("pre", {}, [JSON.stringify(obj, null, 2)]); }
  fetch("openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    document.getElementById("desc").textContent = doc.info.description || "";
    var root = document.getElementById("root");
    root.textContent = "";
    var byTag = {};
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method];
        var tag = (op.tags || ["Other"])[0];
        (byTag[tag] = byTag[tag] || []).push([method.toUpperCase(), path, op]);
      });
    });
    Object.keys(byTag).forEach(function (tag) {
      root.appendChild(el("h2", {}, [tag]));
      byTag[tag].forEach(function (entry) {
        var method = entry[0], path = entry[1], op = entry[2], body = el("div", {"class": "body"});
        if (op.description) body.appendChild(el("p", {}, [op.description]));
        body.appendChild(el("p", {}, [op.security && op.security.length ? "Needs an API key." : "No key needed."]));
        if (op.parameters) {
          var rows = op.parameters.map(function (p) {
            return el("tr", {}, [el("td", {}, [el("code", {}, [p.name])]), el("td", {}, [p["in"]]),
              el("td", {}, [p.required ? "required" : "optional"]), el("td", {}, [JSON.stringify(p.schema)])]);
          });
          body.appendChild(el("h4", {}, ["Parameters"]));
          body.appendChild(el("table", {}, rows));
        }
        if (op.requestBody) {
          body.appendChild(el("h4", {}, ["Request body"]));
          body.appendChild(pre(resolve(doc, op.requestBody.content["application/json"].schema, 0)));
        }
        body.appendChild(el("h4", {}, ["Responses"]));
        Object.keys(op.responses).forEach(function (status) {
          var resp = op.responses[status], content = resp.content || {};
          body.appendChild(el("p", {}, [el("b", {}, [status]), " " + resp.description]));
          if (status === "200" && content["application/json"]) {
            body.appendChild(pre(resolve(doc, content["application/json"].schema, 0)));
          }
        });
        root.appendChild(el("details", {}, [
          el("summary", {}, [el("span", {"class": "m " + method}, [method]), path,
            el("span", {"class": "s"}, [op.summary || ""])]), body]));
      });
    });
  }).catch(function (err) {
    document.getElementById("root").textContent = "Could not load openapi.json: " + err;
  });
})();
</script></body></html>
"""

routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
