// The Live page: streams in progress with a level meter per track, and the
// transcript lines as they are published, over server-sent events from /live/events.
// Data is only ever set as text (textContent), never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? path + "?token=" + encodeURIComponent(token) : path);
const body = document.querySelector("#live-streams tbody");
const empty = document.getElementById("live-empty");
const state = document.getElementById("live-state");
const linesList = document.getElementById("live-lines");
const rowTemplate = document.getElementById("live-row");
const rows = new Map(); // stream id -> row

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds - 60 * m;
  return m + ":" + s.toFixed(1).padStart(4, "0");
}

function showLevels(streams) {
  const seen = new Set();
  for (const s of streams) {
    seen.add(s.stream_id);
    let row = rows.get(s.stream_id);
    if (!row) {
      row = rowTemplate.content.firstElementChild.cloneNode(true);
      const link = row.querySelector("a.call-link");
      link.textContent = s.call_id;
      link.href = withToken("/ui/calls/" + encodeURIComponent(s.call_id));
      row.querySelector(".stream").textContent = s.stream_id;
      row.querySelector(".platform").textContent = s.platform;
      row.dataset.streamId = s.stream_id;
      rows.set(s.stream_id, row);
      body.appendChild(row);
    }
    row.querySelector(".media").textContent = clock(s.media_seconds);
    for (const meter of row.querySelectorAll("meter.level")) {
      const level = s.levels[meter.dataset.track];
      const label = row.querySelector('.db[data-track="' + meter.dataset.track + '"]');
      if (level === undefined) {
        meter.hidden = true;
        label.textContent = "–";
        continue;
      }
      meter.value = Math.max(-60, level);
      meter.dataset.level = String(level);
      label.textContent = level <= -90 ? "silent" : level.toFixed(0) + " dBFS";
    }
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  empty.hidden = rows.size > 0;
}

function addLine(line) {
  const item = document.createElement("li");
  item.className = line.track + (line.kind === "keyword" ? " keyword" : "");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = line.speaker;
  const where = document.createElement("a");
  where.className = "call-link";
  where.href = withToken("/ui/calls/" + encodeURIComponent(line.call_id));
  where.textContent = line.call_id + " " + clock(line.start);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = (line.kind === "keyword" ? "keyword: " : "") + line.text;
  item.append(where, " ", who, " ", text);
  linesList.prepend(item);
  while (linesList.children.length > 100) linesList.lastElementChild.remove();
}

const events = new EventSource(withToken("/live/events"));
events.addEventListener("open", () => {
  state.textContent = "connected";
  state.className = "state on";
});
events.addEventListener("error", () => {
  state.textContent = "reconnecting…";
  state.className = "state off";
});
events.addEventListener("hello", (ev) => {
  linesList.replaceChildren();
  for (const line of JSON.parse(ev.data).lines) addLine(line);
});
events.addEventListener("levels", (ev) => showLevels(JSON.parse(ev.data).streams));
events.addEventListener("transcript", (ev) => addLine(JSON.parse(ev.data)));
