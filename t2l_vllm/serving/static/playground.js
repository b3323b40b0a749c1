// t2l-vllm playground: one description and one input, answered three ways side by side.
// Plain JavaScript, no dependencies. Every request goes to this server (relative URLs, so a
// --root-path prefix works) with the API key, when there is one, as a bearer token. Model
// text is only ever written with textContent.
"use strict";

const api = (path) => new URL("../" + path, window.location.href).toString();
let apiKey = "";   // this tab's memory only: never stored, never put in a URL
let baseModel = "";

const $ = (id) => document.getElementById(id);
const field = (column, name) => column.querySelector(`[data-field="${name}"]`);

function headers(json) {
  const h = {};
  if (apiKey) h["Authorization"] = "Bearer " + apiKey;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

// The message of an OpenAI-style error body, else the status line.
async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return `${response.status}: ${body.error.message}`;
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

function setStatus(text, ok) {
  $("status").textContent = text;
  $("status").className = "status " + (ok ? "ok" : "bad");
}

// /v1/models tells both whether the key works and the base model's name.
async function connect() {
  let response;
  try {
    response = await fetch(api("v1/models"), { headers: headers(false) });
  } catch (e) {
    setStatus("server unreachable", false);
    return false;
  }
  if (response.status === 401) {
    $("login").hidden = false;
    $("run-form").hidden = true;
    $("columns").hidden = true;
    setStatus("API key needed", false);
    if (apiKey) $("login-error").textContent = "The server refused this key.";
    return false;
  }
  if (!response.ok) {
    setStatus(await errorText(response), false);
    return false;
  }
  const models = await response.json();
  // Adapters are listed with the base model as their parent; the base has none.
  baseModel = (models.data.find((m) => !m.parent) || models.data[0]).id;
  $("model-name").textContent = baseModel;
  $("login").hidden = true;
  $("login-error").textContent = "";
  $("run-form").hidden = false;
  setStatus(apiKey ? "connected (key accepted)" : "connected", true);
  return true;
}

function ms(value) {
  return value === null || value === undefined ? "n/a" : `${Number(value).toFixed(1)} ms`;
}

function resetColumn(column) {
  column.dataset.state = "running";
  field(column, "output").textContent = "";
  field(column, "stats").textContent = "";
  column.querySelectorAll("dd").forEach((dd) => { dd.textContent = "\u2013"; });
}

function showAdapter(column, record, createMs) {
  field(column, "adapter-id").textContent = record.id;
  field(column, "confidence").textContent =
    record.confidence === null || record.confidence === undefined ? "n/a (no index)" : record.confidence.toFixed(3);
  const made = record.made || {};
  field(column, "source").textContent = made.source || "n/a";
  field(column, "files-ms").textContent = ms(made.files_ms);
  field(column, "register-ms").textContent = ms(made.register_ms);
  field(column, "create-ms").textContent = ms(createMs) + " (browser round trip)";
}

// One streamed chat completion into `column`; resolves when the stream ends.
async function streamInto(column, body, onHeaders) {
  const t0 = performance.now();
  let firstToken = null, chunks = 0, usage = null, finish = null;
  const output = field(column, "output");
  try {
    const response = await fetch(api("v1/chat/completions"), {
      method: "POST", headers: headers(true), body: JSON.stringify(body),
    });
    if (onHeaders) onHeaders(response.headers);
    if (!response.ok) throw new Error(await errorText(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      // Server-sent events: one "data: {json}" per line, "data: [DONE]" at the end.
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message);
        if (event.usage) usage = event.usage;
        const choice = event.choices && event.choices[0];
        if (!choice) continue;
        if (choice.finish_reason) finish = choice.finish_reason;
        const text = choice.delta && choice.delta.content;
        if (text) {
          if (firstToken === null) firstToken = performance.now() - t0;
          chunks += 1;
          output.textContent += text;
        }
      }
    }
    const total = performance.now() - t0;
    const tokens = usage ? usage.completion_tokens : "?";
    field(column, "stats").textContent =
      `first token ${ms(firstToken)} \u00b7 total ${ms(total)} \u00b7 ${tokens} tokens in ${chunks} text chunks` +
      ` \u00b7 finish: ${finish || "?"}`;
    column.dataset.chunks = String(chunks);
    column.dataset.state = "done";
  } catch (e) {
    field(column, "stats").textContent = "error: " + e.message;
    column.dataset.state = "error";
  }
}

async function run(event) {
  event.preventDefault();
  const description = $("description").value;
  const input = $("input").value;
  const sampling = {
    max_tokens: parseInt($("max-tokens").value, 10) || 64,
    temperature: parseFloat($("temperature").value) || 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  const columns = { adapter: $("col-adapter"), prompt: $("col-prompt"), base: $("col-base") };
  Object.values(columns).forEach(resetColumn);
  $("columns").hidden = false;
  $("run-error").textContent = "";
  $("run").disabled = true;
  try {
    // 1. Make the adapter resident first (generated once, then cached): its id,
    //    confidence and how long generation and registration took on the server.
    const t0 = performance.now();
    const created = await fetch(api("v1/t2l/adapters"), {
      method: "POST", headers: headers(true), body: JSON.stringify({ task_description: description }),
    });
    const createMs = performance.now() - t0;
    if (created.status === 401) { await connect(); return; }
    if (!created.ok) {
      const message = await errorText(created);
      Object.values(columns).forEach((c) => { c.dataset.state = "error"; });
      $("run-error").textContent = "adapter: " + message;
      return;
    }
    showAdapter(columns.adapter, await created.json(), createMs);

    // 2. The three answers, streamed at once (one continuous batch on the server).
    const user = { role: "user", content: input };
    await Promise.all([
      streamInto(columns.adapter, { model: baseModel, messages: [user], task_description: description, ...sampling },
        (h) => {
          field(columns.adapter, "served-by").textContent = h.get("x-t2l-served-by") || "n/a";
          const confidence = h.get("x-t2l-confidence");
          if (confidence) field(columns.adapter, "confidence").textContent = Number(confidence).toFixed(3);
        }),
      streamInto(columns.prompt, {
        model: baseModel, messages: [{ role: "system", content: description }, user], ...sampling,
      }),
      streamInto(columns.base, { model: baseModel, messages: [user], ...sampling }),
    ]);
  } catch (e) {
    $("run-error").textContent = e.message;
  } finally {
    $("run").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key").value;
    connect();
  });
  $("run-form").addEventListener("submit", run);
  connect();  // no key first: works when the server has no --api-key
});
