// The call page: each stream's waveform (both tracks on the media clock, gaps,
// losses and keyword hits marked), its player, captions, and the dialogue that
// seeks the player. Data is only ever set as text (textContent), never as HTML.
"use strict";

const COLORS = {
  inbound: "#2f6fb3",
  outbound: "#c0622d",
  gap: "rgba(214, 39, 40, 0.28)",
  lost: "rgba(230, 150, 20, 0.35)",
  keyword: "#7b2fb3",
  keywordBand: "#efe3f7",
  axis: "#666",
  mid: "#ccc",
  head: "#111",
};

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds - 60 * m;
  return m + ":" + s.toFixed(1).padStart(4, "0");
}

function drawWaveform(canvas, data) {
  const ctx = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  const axis = 22;
  const tracks = ["inbound", "outbound"].filter((t) => data.tracks[t]);
  const lane = (height - axis) / Math.max(1, tracks.length);
  const duration = data.duration_seconds || 1e-9;
  const x = (seconds) => (seconds / duration) * width;
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  tracks.forEach((track, i) => {
    const top = i * lane;
    const mid = top + lane / 2;
    const half = lane / 2 - 4;
    for (const [a, b] of data.gaps[track] || []) {
      ctx.fillStyle = COLORS.gap;
      ctx.fillRect(x(a), top, Math.max(1, x(b) - x(a)), lane);
    }
    for (const k of (data.keywords || []).filter((k) => k.track === track)) {
      ctx.fillStyle = COLORS.keywordBand; // behind the waveform: the bars keep their colour
      ctx.fillRect(x(k.start), top, Math.max(2, x(k.end) - x(k.start)), lane);
    }
    ctx.strokeStyle = COLORS.mid;
    ctx.beginPath();
    ctx.moveTo(0, mid);
    ctx.lineTo(width, mid);
    ctx.stroke();
    const env = data.tracks[track];
    const n = env.min.length;
    ctx.fillStyle = COLORS[track];
    for (let p = 0; p < n; p++) {
      const x0 = (p / n) * width;
      const x1 = ((p + 1) / n) * width;
      const yMax = mid - (env.max[p] / 32768) * half;
      const yMin = mid - (env.min[p] / 32768) * half;
      ctx.fillRect(x0, yMax, Math.max(1, x1 - x0), Math.max(1, yMin - yMax));
    }
    ctx.fillStyle = COLORS.axis;
    ctx.font = "12px sans-serif";
    ctx.fillText(track === "inbound" ? "caller" : "agent", 4, top + 14);
  });
  for (const [a, b] of data.lost || []) {
    ctx.fillStyle = COLORS.lost;
    ctx.fillRect(x(a), 0, Math.max(1, x(b) - x(a)), height - axis);
  }
  for (const k of data.keywords || []) {
    const i = Math.max(0, tracks.indexOf(k.track));
    ctx.fillStyle = COLORS.keyword;
    ctx.fillRect(x(k.start), i * lane, 2, lane);
    ctx.font = "bold 12px sans-serif";
    ctx.fillText(k.text, x(k.start) + 4, i * lane + lane - 6);
  }
  // Time axis: a tick every 1, 2, 5, 10, ... seconds, about ten of them.
  const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
  const step = steps.find((s) => duration / s <= 12) || 3600;
  ctx.fillStyle = COLORS.axis;
  ctx.strokeStyle = COLORS.axis;
  ctx.font = "12px sans-serif";
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const px = Math.min(width - 1, x(t));
    ctx.beginPath();
    ctx.moveTo(px, height - axis);
    ctx.lineTo(px, height - axis + 5);
    ctx.stroke();
    ctx.fillText(clock(t), Math.min(px + 2, width - 40), height - 5);
  }
}

function setupStream(section) {
  const figure = section.querySelector("figure.waveform");
  const audio = section.querySelector("audio");
  const caption = section.querySelector(".caption");
  const lines = Array.from(section.querySelectorAll("button.line"));
  let base = null; // the drawn waveform, without the playhead
  let data = null;

  function drawHead() {
    if (!figure || !base || !data) return;
    const canvas = figure.querySelector("canvas");
    const ctx = canvas.getContext("2d");
    ctx.putImageData(base, 0, 0);
    if (audio && data.duration_seconds > 0) {
      const px = (audio.currentTime / data.duration_seconds) * canvas.width;
      ctx.fillStyle = COLORS.head;
      ctx.fillRect(Math.min(canvas.width - 2, px), 0, 2, canvas.height - 22);
    }
  }

  if (figure) {
    const canvas = figure.querySelector("canvas");
    const info = figure.querySelector(".wave-info");
    fetch(figure.dataset.url, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then((json) => {
        data = json;
        drawWaveform(canvas, data);
        base = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        figure.dataset.duration = String(data.duration_seconds);
        figure.dataset.gaps = String(Object.values(data.gaps).reduce((n, g) => n + g.length, 0));
        figure.dataset.keywords = String(data.keywords.length);
        figure.dataset.drawn = "1";
        info.textContent = clock(data.duration_seconds) + " at " + data.sample_rate + " Hz";
        drawHead();
      })
      .catch((err) => {
        figure.dataset.error = String(err.message || err);
        info.textContent = "waveform unavailable: " + figure.dataset.error;
      });
    canvas.addEventListener("click", (ev) => {
      if (!audio || !data) return;
      const rect = canvas.getBoundingClientRect();
      audio.currentTime = ((ev.clientX - rect.left) / rect.width) * data.duration_seconds;
    });
  }

  if (audio) {
    audio.addEventListener("timeupdate", () => {
      drawHead();
      const t = audio.currentTime;
      for (const b of lines) {
        const on = t >= Number(b.dataset.start) && t < Math.max(Number(b.dataset.end), Number(b.dataset.start) + 0.5);
        b.classList.toggle("current", on);
      }
    });
    audio.addEventListener("seeked", drawHead);
    const track = audio.textTracks[0];
    if (track) {
      track.mode = "hidden"; // shown in the caption line below the player (an <audio> has no picture)
      track.addEventListener("cuechange", () => {
        const cue = track.activeCues && track.activeCues[0];
        if (!cue) {
          caption.textContent = "";
          return;
        }
        const voice = /^<v ([^>]*)>/.exec(cue.text);
        // A cue wraps long lines for players; the caption line below the player is one line.
        const words = cue.getCueAsHTML().textContent.replace(/\s+/g, " ").trim();
        caption.textContent = (voice ? voice[1] + ": " : "") + words;
      });
    }
  }

  for (const button of lines) {
    button.addEventListener("click", () => {
      if (!audio) return;
      audio.currentTime = Number(button.dataset.start);
      audio.play().catch(() => {});
    });
  }
}

document.querySelectorAll("section.stream").forEach(setupStream);
