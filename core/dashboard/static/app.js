// cis490 dashboard: one SSE stream for every event type, a snapshot for late
// comers, and scenes redrawn at most once a second (not while hidden).
// Event fields follow core/dashboard/events.py (docs/dashboard.md).
"use strict";

const MAX_POINTS = 600;          // points kept per series
const MAX_SPARKS = 8;            // telemetry channels charted
const MAX_NOTICES = 4;           // notice lines shown under the header
const REDRAW_MS = 1000;
// Telemetry values as people read them: 5.225, 521, 575M (not 5.750e+8).
const COMPACT = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 4 });
const PHASE_COLORS = { idle: "#9aa5b1", execute: "#e67e22", persist: "#8e44ad", beacon: "#2e86c1",
                       act: "#c0392b", dormant: "#27ae60" };
const EXTRA_COLORS = ["#16a085", "#d35400", "#7f8c8d", "#f1c40f", "#2c3e50"];

const state = {
  lastId: 0,
  episode: null,                  // the latest episode event
  predictions: [],                // of the current episode, oldest first
  phases: [],                     // phase order as the probabilities give it
  telemetry: new Map(),           // channel -> {t: [], v: []}
  telemetryEpisode: null,
  metrics: new Map(),             // model_mode@split -> model_metric
  profiles: new Map(),            // model_mode@split -> profile_stats
  perf: null,
  units: new Map(),               // channel -> unit, as telemetry events give them (a Map: a channel
                                  // named "constructor" is a name, not Object's own property)
  notices: [],                    // the latest notice events, newest first
};
// `?snapshot`: the state as it is now, drawn once, with no event stream left
// open, so `chromium --headless --screenshot` (which waits for the page to
// settle) completes.
const SNAPSHOT = new URLSearchParams(location.search).has("snapshot");
const dirty = new Set();
const charts = {};

function $(id) { return document.getElementById(id); }
function fmt(x, d = 3) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(d); }
function phaseColor(p) {
  if (Object.hasOwn(PHASE_COLORS, p)) return PHASE_COLORS[p];
  let h = 0;
  for (const c of p) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return EXTRA_COLORS[h % EXTRA_COLORS.length];
}
function push(arr, x) { arr.push(x); if (arr.length > MAX_POINTS) arr.splice(0, arr.length - MAX_POINTS); }
function live(scene) { $("scene-" + scene).dataset.state = "live"; }
function key(ev) { return `${ev.model}_${ev.mode}@${ev.split}`; }
function fields(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

// -- applying events -----------------------------------------------------------
const apply = {
  episode(ev) {
    if (ev.event === "start" && (!state.episode || state.episode.episode_id !== ev.episode_id)) {
      state.predictions = [];
      dirty.add("timeline"); dirty.add("probabilities");
    }
    state.episode = ev;
    dirty.add("episode"); dirty.add("profiles");
  },
  telemetry(ev) {
    if (state.telemetryEpisode !== ev.episode_id) { state.telemetry.clear(); state.telemetryEpisode = ev.episode_id; }
    if (ev.units) for (const [ch, unit] of Object.entries(ev.units)) state.units.set(ch, unit);
    for (const [ch, v] of Object.entries(ev.values)) {
      if (!state.telemetry.has(ch)) {
        if (state.telemetry.size >= MAX_SPARKS) continue;
        state.telemetry.set(ch, { t: [], v: [] });
      }
      const s = state.telemetry.get(ch);
      push(s.t, ev.t_s); push(s.v, v);
    }
    dirty.add("telemetry");
  },
  prediction(ev) {
    const last = state.predictions[state.predictions.length - 1];
    if (last && last.episode_id !== ev.episode_id) state.predictions = [];
    push(state.predictions, ev);
    const names = Object.keys(ev.probabilities);
    if (names.join() !== state.phases.join()) { state.phases = names; destroyChart("probabilities"); }
    dirty.add("timeline"); dirty.add("probabilities");
  },
  model_metric(ev) { state.metrics.set(key(ev), ev); dirty.add("metrics"); },
  profile_stats(ev) { state.profiles.set(key(ev), ev); dirty.add("profiles"); },
  perf(ev) { state.perf = ev; dirty.add("perf"); },
  notice(ev) {
    state.notices.unshift(ev); state.notices.length = Math.min(state.notices.length, MAX_NOTICES);
    dirty.add("notices");
  },
};

function applyState(st) {
  // The latest event of each type, and the current episode's predictions and
  // telemetry so far, applied in the order they were published.
  const all = [...(st.history || [])];
  for (const list of Object.values(st.snapshot)) for (const ev of list) all.push(ev);
  const seen = new Set();
  all.sort((a, b) => a.id - b.id).forEach(ev => {
    if (seen.has(ev.id)) return;
    seen.add(ev.id);
    if (apply[ev.type]) apply[ev.type](ev);
  });
}

function resetState() {
  state.episode = null; state.predictions = []; state.telemetry.clear(); state.telemetryEpisode = null;
  state.metrics.clear(); state.profiles.clear(); state.perf = null; state.notices = [];
  ["episode", "timeline", "probabilities", "telemetry", "metrics", "profiles", "perf", "notices"].forEach(s => dirty.add(s));
}

// -- drawing -------------------------------------------------------------------
const draw = {
  episode() {
    const e = state.episode; if (!e) return;
    live("episode");
    const rows = [["episode", e.episode_id], ["host", e.host_id], ["profile", e.profile], ["sample", e.sample_name],
                  ["model", `${e.model} (${e.mode})`], ["shown by", e.source === "watch" ? "watch: it just landed" : "replay"],
                  ["status", e.event === "end" ? `ended: ${e.windows ?? "?"} windows, ` +
                                      (e.accuracy === undefined ? "unlabelled" : `accuracy ${fmt(e.accuracy)}`)
                                               : "running"]];
    // Time to detect in this episode: each phase's delay from its labelled onset, or missed.
    for (const d of (e.event === "end" && e.detection) || [])
      rows.push([`caught ${d.phase}`, d.delay_s === null ? `missed (it began at ${d.onset_s.toFixed(1)} s)`
                                                         : `${d.delay_s.toFixed(1)} s after it began at ${d.onset_s.toFixed(1)} s`]);
    fields($("episode-fields"), rows);
  },
  timeline() {
    const p = state.predictions; if (!p.length) return;
    live("timeline");
    for (const [id, pick] of [["timeline-predicted", x => x.predicted], ["timeline-truth", x => x.truth]]) {
      const c = $(id);
      c.width = Math.max(100, c.clientWidth);
      const g = c.getContext("2d");
      g.clearRect(0, 0, c.width, c.height);
      const w = c.width / p.length;
      p.forEach((x, i) => {
        const phase = pick(x);
        g.fillStyle = phase ? phaseColor(phase) : "#ffffff";
        g.fillRect(Math.floor(i * w), 0, Math.ceil(w), c.height);
      });
    }
    const legend = $("phase-legend");
    legend.replaceChildren(...state.phases.map(ph => {
      const s = document.createElement("span"); const i = document.createElement("i");
      i.style.background = phaseColor(ph); s.append(i, ph); return s;
    }));
    const x = p[p.length - 1];
    $("prediction-latest").textContent = `t = ${fmt(x.t_center_s, 1)} s: predicted ${x.predicted}` +
      (x.truth ? `, true ${x.truth}` : "") + `, trust ${fmt(x.trust, 2)}` +
      (p.some(y => y.truth) ? `; ${p.filter(y => y.truth && y.truth === y.predicted).length}/` +
                              `${p.filter(y => y.truth).length} right` : "; unlabelled: nothing to be right against");
  },
  probabilities() {
    const p = state.predictions; if (!p.length) return;
    live("probabilities");
    const data = [p.map(x => x.t_center_s), ...state.phases.map(ph => p.map(x => x.probabilities[ph])),
                  p.map(x => x.trust)];
    if (!charts.probabilities) {
      const el = $("probability-chart");
      const series = [{ label: "t (s)" }, ...state.phases.map(ph => ({ label: ph, stroke: phaseColor(ph), width: 1.5 })),
                      { label: "trust", stroke: "#1d2330", width: 2, dash: [6, 4] }];
      charts.probabilities = new uPlot({ width: el.clientWidth || 600, height: 220, series,
        scales: { x: { time: false }, y: { range: [0, 1] } }, legend: { live: false },
        axes: [{ label: "seconds from the episode start", size: 40 }, { label: "probability, trust", size: 50 }] },
        data, el);
    } else {
      charts.probabilities.setData(data);
    }
  },
  telemetry() {
    if (!state.telemetry.size) return;
    live("telemetry");
    const box = $("sparklines");
    for (const [ch, s] of state.telemetry) {
      let entry = charts["spark:" + ch];
      if (!entry) {
        const row = document.createElement("div"); row.className = "spark"; row.dataset.channel = ch;
        const name = document.createElement("span"); name.className = "name";
        name.textContent = state.units.get(ch) ? `${ch} (${state.units.get(ch)})` : ch;
        const plot = document.createElement("div"); const value = document.createElement("span");
        value.className = "value"; row.append(name, plot, value); box.append(row);
        const u = new uPlot({ width: Math.max(120, box.clientWidth - 90), height: 36, legend: { show: false },
          cursor: { show: false }, axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
          series: [{}, { stroke: "#4a78b5", width: 1.2, spanGaps: false }] }, [s.t, s.v], plot);
        entry = charts["spark:" + ch] = { u, value };
      } else {
        entry.u.setData([s.t, s.v]);
      }
      const v = s.v[s.v.length - 1];
      // A missing value is a dash, with no unit after it ("– %" read as a value).
      entry.value.textContent = v === null ? "–" : COMPACT.format(v) + (state.units.get(ch) ? ` ${state.units.get(ch)}` : "");
    }
  },
  metrics() {
    if (!state.metrics.size) return;
    live("metrics");
    const all = [...state.metrics.values()].sort((a, b) => b.macro_f1 - a.macro_f1);
    // The bars start near the lowest interval, not at 0: on a 0-1 scale 0.887 and 0.991 looked alike.
    const lo = Math.max(0, Math.floor(Math.min(...all.map(m => m.macro_f1_ci[0])) * 10 - 0.5) / 10);
    const at = x => `${Math.max(0, (x - lo) / (1 - lo)) * 100}%`;
    const rows = all.map(m => {
      const row = document.createElement("div"); row.className = "bar-row"; row.dataset.key = key(m);
      const label = document.createElement("span"); label.className = "label";
      label.textContent = `${m.model}${m.mode === "oracle" ? "_oracle" : ""}${m.transductive ? "*" : ""} @${m.split}`;
      if (m.transductive) label.title = "transductive: learned from the inputs (never the labels) of the windows it is scored on";
      const track = document.createElement("div"); track.className = "bar-track";
      const fill = document.createElement("div"); fill.className = "bar-fill"; fill.style.width = at(m.macro_f1);
      const ci = document.createElement("div"); ci.className = "bar-ci";
      ci.style.left = at(m.macro_f1_ci[0]);
      ci.style.width = `${(m.macro_f1_ci[1] - Math.max(lo, m.macro_f1_ci[0])) / (1 - lo) * 100}%`;
      track.append(fill, ci);
      const value = document.createElement("span"); value.className = "value";
      value.textContent = `${fmt(m.macro_f1)} [${fmt(m.macro_f1_ci[0])}, ${fmt(m.macro_f1_ci[1])}]`;   // as many decimals as the estimate
      value.title = `accuracy ${fmt(m.accuracy)}, ${m.windows} windows, ${m.episodes} episodes`;
      row.append(label, track, value);
      return row;
    });
    $("metric-bars").replaceChildren(...rows);
    $("metric-bars").dataset.from = String(lo);
    $("metric-note").textContent = `bars from ${fmt(lo, 1)} to 1.0` +
      (all.some(m => m.transductive) ? "; * transductive: learned from the inputs (never the labels) of the windows it is scored on" : "");
  },
  profiles() {
    if (!state.profiles.size) return;
    live("profiles");
    // The replayed model's table open, the others folded: eight open tables buried the page.
    const current = state.episode ? `${state.episode.model}_${state.episode.mode}` : null;
    const list = [...state.profiles.values()];
    const open = list.find(ps => `${ps.model}_${ps.mode}` === current) || list[0];
    // A table the reader opened stays open across redraws.
    const was = new Map([...$("profile-tables").querySelectorAll("details")].map(d => [d.dataset.key, d.open]));
    const tables = list.map(ps => {
      const wrap = document.createElement("details");
      wrap.open = ps === open || was.get(key(ps)) === true; wrap.dataset.key = key(ps);
      const sum = document.createElement("summary"); sum.textContent = `${ps.model} (${ps.mode}) on ${ps.split}`;
      wrap.append(sum);
      const t = document.createElement("table"); t.dataset.key = key(ps);
      const head = t.createTHead().insertRow();
      ["profile", "macro-F1 over its phases [95% CI]", "windows", "episodes"].forEach(h => {
        const th = document.createElement("th"); th.textContent = h; head.append(th);
      });
      const body = t.createTBody();
      for (const r of ps.profiles) {
        const tr = body.insertRow();
        [[r.profile, ""], [`${fmt(r.macro_f1)} [${fmt(r.macro_f1_ci[0])}, ${fmt(r.macro_f1_ci[1])}]`, "num"],
         [String(r.windows), "num"], [String(r.episodes), "num"]].forEach(([v, cls]) => {
          const td = tr.insertCell(); td.textContent = v; if (cls) td.className = cls;
        });
      }
      wrap.append(t);
      if (ps.untested_profiles.length) {
        const u = document.createElement("p"); u.className = "untested";
        u.textContent = `untested (absent from test, never averaged away): ${ps.untested_profiles.join(", ")}`;
        wrap.append(u);
      }
      return wrap;
    });
    $("profile-tables").replaceChildren(...tables);
  },
  notices() {
    $("notices").replaceChildren(...state.notices.map(n => {
      const li = document.createElement("li"); li.dataset.level = n.level; li.textContent = n.text; return li;
    }));
  },
  perf() {
    const p = state.perf; if (!p) return;
    live("perf");
    fields($("perf-fields"), [["latency p50", `${fmt(p.latency_p50_ms, 1)} ms`], ["latency p99", `${fmt(p.latency_p99_ms, 1)} ms`],
      ["windows/s", fmt(p.windows_per_s, 2)], ["server RSS", `${fmt(p.rss_mb, 0)} MB`], ["server CPU", `${fmt(p.cpu_percent, 1)}%`]]);
  },
};

function destroyChart(name) { if (charts[name]) { charts[name].destroy(); delete charts[name]; } }

function redraw() {
  if (document.hidden) return;          // nothing is drawn for a tab nobody sees
  for (const scene of [...dirty]) { dirty.delete(scene); draw[scene](); }
}

// -- the connection ------------------------------------------------------------
let source = null;
let replayTimer = null;
function setConn(s) { const c = $("conn"); c.dataset.state = s; c.textContent = s; }
function noteId(id) {
  state.lastId = id;
  $("last-id").textContent = `event #${id}`;
}

function onEvent(type, msg) {
  const ev = JSON.parse(msg.data);
  if (msg.lastEventId) noteId(Number(msg.lastEventId));
  if (type === "reset") { resetState(); applyState(ev); }
  else if (apply[type]) apply[type](ev);
  if ($("conn").dataset.state === "replaying") {
    clearTimeout(replayTimer);
    replayTimer = setTimeout(() => setConn("live"), 500);
  }
}

function open(after) {
  source = new EventSource(`/events?after=${after}`);
  let everOpen = false;
  source.onopen = () => {
    // A reconnect first receives what it missed (the browser sends Last-Event-ID).
    setConn(everOpen ? "replaying" : "live");
    if (everOpen) replayTimer = setTimeout(() => setConn("live"), 500);
    everOpen = true;
  };
  source.onerror = () => setConn("reconnecting");
  for (const type of [...Object.keys(apply), "reset"]) source.addEventListener(type, m => onEvent(type, m));
}

async function start() {
  try {
    const r = await fetch("/api/snapshot", { cache: "no-store" });
    const st = await r.json();
    applyState(st);
    if (st.last_id) noteId(st.last_id);
    redraw();
    if (SNAPSHOT) {
      setConn("snapshot");
      document.body.dataset.ready = "snapshot";
      return;
    }
    open(st.last_id);
  } catch (e) {
    setConn("reconnecting");
    setTimeout(start, 2000);
  }
}

if (!SNAPSHOT) setInterval(redraw, REDRAW_MS);
document.addEventListener("visibilitychange", redraw);
window.addEventListener("resize", () => {
  for (const [name, c] of Object.entries(charts)) if (c.setSize && name === "probabilities") {
    c.setSize({ width: $("probability-chart").clientWidth, height: 200 });
  }
  ["timeline"].forEach(s => dirty.add(s));
});
start();
