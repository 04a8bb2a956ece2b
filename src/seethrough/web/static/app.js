// seethrough explorer: draws what the server computes. Menus come from /api/info (the
// library's registries), every number from a view endpoint; nothing is computed here.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { info: null, input: null, layer: null, unit: null, grid: null, epsGrid: [], flip: null };
const client = Math.random().toString(36).slice(2);
const seq = {};  // per-view sequence numbers: a reply to an older request is dropped
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function next(view) { seq[view] = (seq[view] || 0) + 1; return seq[view]; }
function current(view, n) { return seq[view] === n; }
const fmt = (v, digits) => (v === null || v === undefined ? "n/a" : v.toFixed(digits));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The server wrote its per-start token into this page; requests that change state must send it
// back (a page from another site cannot read it, so it cannot start jobs or upload here).
const TOKEN = document.querySelector('meta[name="seethrough-token"]').content;

async function api(url, options = {}) {
  const res = await fetch(url, { ...options, headers: { ...(options.headers || {}), "X-Seethrough-Token": TOKEN } });
  if (res.status === 204) return null;  // superseded by a newer request
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.detail) || `${res.status} ${res.statusText}`);
  if (body === null) throw new Error(`the server's reply to ${url} was not JSON`);
  return body;
}

function section(id) { return document.getElementById(id); }
function setError(view, message) { section(view).querySelector(".error").textContent = message || ""; }
function setProgress(view, html) { section(view).querySelector(".progress").innerHTML = html || ""; }
function query(params) { return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString(); }

// Run a view as a job, showing step/total and elapsed time, then read it from the cache.
// Every POST gets its own ticket (identical requests from any page share one computation);
// a view's newer request cancels its older ticket, which only withdraws this page's interest.
// Replies may arrive out of order, so the view's sequence number (`seqName`), not arrival,
// decides which ticket is the newer one.
const running = {};
async function runJob(view, kind, params, seqName = view) {
  const n = seq[seqName];
  const qs = query(params);
  const cancel = (id) => api(`/api/jobs/${id}`, { method: "DELETE" }).catch(() => {});
  let job = await api(`/api/jobs/${kind}?${qs}`, { method: "POST" });
  if (!current(seqName, n)) {
    if (running[seqName] !== job.id) cancel(job.id);
    return null;
  }
  if (running[seqName] && running[seqName] !== job.id) cancel(running[seqName]);
  running[seqName] = job.id;
  while (job.state === "queued" || job.state === "running") {
    const what = job.state === "queued" ? "waiting for the model" : `${job.step || kind} ${job.done}/${job.total || "?"}`;
    setProgress(view, `<span class="status" data-state="${job.state}">${what} · ${job.elapsed.toFixed(1)} s</span><button data-job="${job.id}">Cancel</button>`);
    section(view).querySelector(".progress button").onclick = () => cancel(job.id);
    await sleep(150);
    if (!current(seqName, n)) return null;
    job = await api(`/api/jobs/${job.id}`);
  }
  setProgress(view, job.state === "done" ? "" : `<span class="status" data-state="${job.state}">${job.state}</span>`);
  if (job.state === "error") throw new Error(job.error);
  if (job.state === "cancelled") return null;
  return api(`/api/${kind}?${qs}`);
}

async function guarded(view, fn) {
  setError(view, "");
  try { await fn(); } catch (e) { setError(view, e.message); }
}

// The chosen method's or attack's own options, drawn from its registry spec (/api/info): one control
// per option, named data-option; only values the user changed are sent, as a JSON object.
function drawOptions(box, options, onchange) {
  box.innerHTML = "";
  for (const o of options || []) {
    const label = document.createElement("label");
    label.title = o.help || "";
    let input;
    if (o.choices) {
      input = document.createElement("select");
      for (const c of o.choices) { const opt = document.createElement("option"); opt.value = c; opt.textContent = c; input.appendChild(opt); }
      input.value = o.default;
    } else if (o.type === "bool") {
      input = document.createElement("input"); input.type = "checkbox"; input.checked = !!o.default;
    } else {
      input = document.createElement("input");
      input.type = o.type === "int" || o.type === "float" ? "number" : "text";
      if (o.type === "float") input.step = "any";
      if (o.range && o.range[0] !== null) input.min = o.range[0];
      if (o.range && o.range[1] !== null) input.max = o.range[1];
      input.value = o.default === null ? "" : o.default;
      input.placeholder = o.default === null ? "default" : "";
    }
    input.dataset.option = o.name; input.dataset.type = o.type;
    input.dataset.default = JSON.stringify(o.default);
    input.onchange = onchange;
    label.append(`${o.name} `, input);
    box.appendChild(label);
  }
}

function chosenOptions(box) {
  const out = {};
  box.querySelectorAll("[data-option]").forEach((el) => {
    const t = el.dataset.type, d = JSON.parse(el.dataset.default);
    let v = t === "bool" ? el.checked : el.value;
    if (t !== "bool" && v === "") return;  // left empty: the default
    if ((t === "int" || t === "float") && v !== "") v = Number(v);
    if (v !== d && String(v) !== String(d)) out[el.dataset.option] = v;
  });
  return JSON.stringify(out);
}

function fill(select, items, value = (x) => x, label = (x) => x) {
  select.innerHTML = "";
  for (const item of items) {
    const o = document.createElement("option");
    o.value = value(item); o.textContent = label(item);
    select.appendChild(o);
  }
}

// ---------------------------------------------------------------- 1. input and predictions
async function loadInput() {
  const n = next("input");
  await guarded("input", async () => {
    const r = await api(`/api/predictions?${query({ input: state.input, k: 5 })}`);
    if (!current("input", n)) return;
    $("#input-image").src = r.image;
    $("#input-caption").textContent = `the input as the model sees it (${r.shape.join("×")})`;
    $("#top5").innerHTML = r.top.map((p) => `<li data-index="${p.index}"><span class="label">${p.label}</span> <span class="prob">${(100 * p.probability).toFixed(1)} %</span><span class="bar" style="width:${Math.round(200 * p.probability)}px"></span></li>`).join("");
  });
}

// ---------------------------------------------------------------- 2. activations
async function loadActivations() {
  if (!state.layer) return;
  const n = next("activations");
  await guarded("activations", async () => {
    const r = await api(`/api/activations?${query({ input: state.input, layer: state.layer, show: $("#show-select").value })}`);
    if (!current("activations", n)) return;
    $("#grid-rule").textContent = `${r.layer}: showing ${r.rule} (maps ${r.map.join("×")})`;
    const grid = $("#grid");
    grid.innerHTML = "";
    r.tiles.forEach((src, i) => {
      const img = document.createElement("img");
      img.className = "tile"; img.src = src; img.dataset.channel = r.shown[i];
      img.title = `channel ${r.shown[i]}`; img.alt = `channel ${r.shown[i]}`;
      img.onclick = () => { state.unit = { layer: r.layer, channel: r.shown[i] }; location.hash = "#units"; };
      grid.appendChild(img);
    });
    grid.dataset.count = r.tiles.length;
  });
}

// ---------------------------------------------------------------- 3. unit browser
async function loadUnit() {
  if (!state.unit) return;
  const n = next("units");
  const { layer, channel } = state.unit;
  $("#unit-title").textContent = `${layer}, channel ${channel}`;
  $("#unit-examples").innerHTML = "";
  await guarded("units", async () => {
    const r = await runJob("units", "unit", { input: state.input, layer, channel });
    if (!r || !current("units", n)) return;
    if (r.filter) { $("#unit-filter").src = r.filter; $("#unit-filter-note").textContent = "filter weights"; }
    else { $("#unit-filter").removeAttribute("src"); $("#unit-filter-note").textContent = r.filter_note; }
    $("#unit-map").src = r.map;
    $("#unit-max").src = r.maximize;
    $("#unit-max-note").textContent = `activation maximisation: ${r.maximize_note}`;
    $("#unit-examples-note").textContent = `(${r.examples.length}, ${r.examples_note})`;
    $("#unit-examples").innerHTML = r.examples.map((e) => `<figure><img class="example" src="${e.image}" alt="sample ${e.index}"><figcaption>#${e.index} · ${e.label} · ${e.value.toFixed(2)}</figcaption></figure>`).join("");
    const sc = r.scan;  // a stored scan of this layer: its dead/alive state and histogram over the whole data set
    $("#unit-scan").hidden = !sc;
    if (sc) {
      $("#unit-scan-state").textContent = `over the scan: ${sc.state || "n/a"}` + (sc.active === null ? "" : `, active on ${(100 * sc.active).toFixed(1)} % of the examples`) + (sc.mean === null ? "" : `, mean ${fmt(sc.mean, 3)}, std ${fmt(sc.std, 3)}`);
      if (sc.histogram && sc.histogram.image) $("#unit-scan-hist").src = sc.histogram.image; else $("#unit-scan-hist").removeAttribute("src");
    }
  });
}

// ---------------------------------------------------------------- 4. attribution
async function loadAttribution() {
  const n = next("attribution");
  const method = $("#method-select").value;
  const target = $("#target-input").value;
  $("#attr-overlay").removeAttribute("src");
  $("#attr-overlay").removeAttribute("data-method");
  $("#attr-caption").textContent = "";
  await guarded("attribution", async () => {
    const r = await runJob("attribution", "attribution", { input: state.input, method, target, options: chosenOptions($("#method-options")) });
    if (!r || !current("attribution", n)) return;
    $("#attr-overlay").src = r.overlay;
    $("#attr-overlay").dataset.method = r.method;
    $("#attr-caption").textContent = `${r.method} (${r.family}; ${r.paper}) for class ${r.target} · ${r.label}`;
    const b = r.badge;
    $("#badge-rows").innerHTML = [
      [`ρ with the top layer (${b.top_layer}) randomised`, b.randomized_top === null ? "undefined (a constant map has no ranking)" : fmt(b.randomized_top, 2), "lower is better (the map should depend on the model)"],
      [`deletion AUC (to ${b.reference || "blur"})`, `${fmt(b.deletion, 3)} vs least-relevant-first ${fmt(b.deletion_lerf, 3)} (random ${fmt(b.deletion_random, 3)})`, "lower is better"],
      [`insertion AUC (from ${b.reference || "blur"})`, `${fmt(b.insertion, 3)} vs random ${fmt(b.insertion_random, 3)}`, "higher is better"],
    ].map((row) => `<tr>${row.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
    $("#badge-verdict").textContent = b.verdict;
  });
}

// ---------------------------------------------------------------- 5. projector
async function loadProjection() {
  const n = next("projector");
  const fromScan = $("#proj-scan").checked && !$("#proj-scan-label").hidden;
  const params = fromScan ? { layer: $("#proj-layer").value, method: $("#proj-method").value }
    : { input: state.input, layer: $("#proj-layer").value, method: $("#proj-method").value, n: $("#proj-n").value };
  const thumb = (i) => (fromScan ? `/api/scan/${i}.png` : `/api/data/${i}.png`);
  await guarded("projector", async () => {
    const r = await runJob("projector", fromScan ? "scan_projection" : "projection", params);
    if (!r || !current("projector", n)) return;
    $("#proj-info").textContent = fromScan
      ? `${r.method} of ${r.layer}: the stored scan's sample of ${r.n} of ${r.available} examples (their stored activations, no forward pass), coloured by label`
      : `${r.method} of ${r.layer}: ${r.n} of ${r.available} samples (seed ${r.seed}), coloured by label; the black star is the input (predicted ${r.input.predicted})`;
    const svg = $("#proj-svg");
    const pts = r.points.map((p) => `<circle class="point" cx="${p.x}" cy="${1 - p.y}" r="0.011" fill="${COLORS[p.label % COLORS.length]}" data-index="${p.index}" data-name="${p.name}"></circle>`);
    const c = r.input;
    if (c) pts.push(`<path class="current" transform="translate(${c.x} ${1 - c.y}) scale(0.03)" d="M0,-1 L0.29,-0.4 L0.95,-0.31 L0.47,0.15 L0.59,0.81 L0,0.5 L-0.59,0.81 L-0.47,0.15 L-0.95,-0.31 L-0.29,-0.4 Z"></path>`);
    svg.innerHTML = pts.join("");
    svg.dataset.count = r.points.length;
    svg.querySelectorAll("circle.point").forEach((el) => {
      el.onmouseenter = () => {
        $("#proj-thumb").src = thumb(el.dataset.index);
        $("#proj-hover").textContent = `sample #${el.dataset.index} · ${el.dataset.name}`;
      };
    });
    $("#proj-neighbors").innerHTML = (r.neighbors || []).map((nb) => `<li><img src="/api/data/${nb.index}.png" alt="sample ${nb.index}" width="32"> #${nb.index} · ${nb.label}</li>`).join("");
    const s = r.separation;
    $("#proj-separation").textContent = s ? `5-NN accuracy ${(100 * s.knn).toFixed(0)} % in the layer, ${(100 * s.knn_2d).toFixed(0)} % in the map; neighbour purity ${(100 * s.purity).toFixed(0)} % / ${(100 * s.purity_2d).toFixed(0)} %` : "";
  });
}

// ---------------------------------------------------------------- 6. adversarial playground
function epsAt(i) { return state.epsGrid[Number(i)]; }

async function loadFlip() {
  const n = next("flip");
  const method = $("#attack-select").value;
  const marker = $("#flip-marker");
  marker.textContent = "finding the smallest ε that flips the label…";
  marker.removeAttribute("data-index"); marker.removeAttribute("data-eps");
  await guarded("adversarial", async () => {
    const r = await runJob("adversarial", "flip", { input: state.input, method, options: chosenOptions($("#attack-options")) }, "flip");
    if (!r || !current("flip", n)) return;
    if (r.flip === null) { marker.textContent = `no ε up to ${r.grid[r.grid.length - 1]}/255 flips ${r.clean}`; marker.dataset.index = "none"; return; }
    const i = r.grid.indexOf(r.flip);
    marker.dataset.index = i; marker.dataset.eps = r.flip;
    marker.textContent = `▼ flips at ε = ${r.flip}/255 (${r.clean} → ${r.labels[i]})`;
    marker.style.marginLeft = `${(300 * i) / (r.grid.length - 1)}px`;
  });
}

async function loadEps() {
  const n = next("eps");
  const eps = epsAt($("#eps-slider").value);
  $("#eps-value").textContent = eps;
  await guarded("adversarial", async () => {
    const r = await api(`/api/adversarial?${query({ input: state.input, method: $("#attack-select").value, eps, options: chosenOptions($("#attack-options")), client, seq: n })}`);
    if (!r || !current("eps", n)) return;  // a newer ε is on its way
    $("#adv-label").textContent = r.label;
    $("#adv-label").dataset.eps = r.eps;
    $("#adv-prob").textContent = `${(100 * r.probability).toFixed(1)} %, L∞ = ${r.linf.toFixed(2)}/255${r.flipped ? " · flipped" : ""}`;
    $("#adv-image").src = r.image;
    $("#adv-pert").src = r.perturbation;
  });
}

// ---------------------------------------------------------------- 7. text (a text model's only view)
function textParams() {
  const p = { text: $("#text-input").value };
  if (!$("#pair-label").hidden) p.pair = $("#pair-input").value;
  return p;
}

async function loadTextTokens() {
  const n = next("text-tokens");
  const params = { ...textParams(), method: $("#text-method").value, target: $("#text-target").value };
  $("#text-words").innerHTML = ""; $("#text-tokens").innerHTML = ""; $("#text-caption").textContent = "";
  await guarded("text", async () => {
    const r = await runJob("text", "text_tokens", params, "text-tokens");
    if (!r || !current("text-tokens", n)) return;
    const extra = Object.entries(r.extra).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${v.toExponential(2)}`);
    $("#text-caption").textContent = `${r.method}: each word's score for ${r.explains} (sum of its pieces; red raises it, blue lowers it; hover for the value)${extra.length ? " · " + extra.join(", ") : ""}`;
    $("#text-words").innerHTML = r.words_html;  // tokens_html escapes every token
    $("#text-words").dataset.method = r.method;
    $("#text-tokens").innerHTML = r.tokens_html;
  });
}

async function loadAttention() {
  const n = next("text-attention");
  const params = { text: $("#text-input").value, layer: $("#att-layer").value, head: $("#att-head").value };
  await guarded("text", async () => {
    const r = await api(`/api/text_attention?${query(params)}`);
    if (!r || !current("text-attention", n)) return;
    if ($("#att-layer").options.length !== r.layers) { fill($("#att-layer"), [...Array(r.layers).keys()]); $("#att-layer").value = r.layer; }
    if ($("#att-head").options.length !== r.heads + 1) {
      fill($("#att-head"), [-1, ...Array(r.heads).keys()], (h) => h, (h) => (h < 0 ? "mean" : h)); $("#att-head").value = r.head;
    }
    $("#att-head-view").src = r.image;
    $("#att-caption").textContent = `head view: layer ${r.layer}, ${r.head < 0 ? "mean of the heads" : `head ${r.head}`} (queries left, keys right)`;
  });
}

async function loadModelView() {
  const n = next("text-model-view");
  await guarded("text", async () => {
    const r = await runJob("text", "text_model_view", { text: $("#text-input").value }, "text-model-view");
    if (r && current("text-model-view", n)) $("#att-model-view").src = r.image;
  });
}

async function loadProbe() {
  const n = next("text-probe");
  await guarded("text", async () => {
    const r = await runJob("text", "text_probe", {}, "text-probe");
    if (!r || !current("text-probe", n)) return;
    $("#probe-plot").src = r.image;
    $("#probe-caption").textContent = `held-out accuracy of a linear probe per layer on ${r.n} generated sentences per set (dashed: control task); computed once per session`;
  });
}

function loadText() { loadTextTokens(); loadAttention(); loadModelView(); }

function startText(info) {
  document.querySelectorAll("nav a").forEach((a) => { a.hidden = a.getAttribute("href") !== "#text"; });
  document.querySelectorAll("header label").forEach((l) => { l.hidden = true; });
  const t = info.text;
  fill($("#text-method"), t.methods);
  $("#pair-label").hidden = t.task !== "similarity";
  $("#text-target-label").hidden = t.task === "similarity";
  fill($("#text-target"), ["", ...t.labels.keys()], (i) => i, (i) => (i === "" ? "predicted" : `${i} · ${t.labels[i]}`));
  $("#text-form").onsubmit = (e) => { e.preventDefault(); loadText(); };
  $("#text-method").onchange = loadTextTokens;
  $("#text-target").onchange = loadTextTokens;
  $("#att-layer").onchange = $("#att-head").onchange = loadAttention;
  $("#probe-run").onclick = loadProbe;
  window.addEventListener("hashchange", show);
  document.body.dataset.ready = "true";
  show();
}

// ---------------------------------------------------------------- navigation and start-up
const loaders = { input: loadInput, activations: loadActivations, units: loadUnit, attribution: loadAttribution, projector: loadProjection, adversarial: () => { loadFlip(); loadEps(); }, text: loadText };
const loadedFor = {};

function show() {
  const id = (location.hash || "#input").slice(1);
  const text = Boolean(state.info && state.info.text);  // a text model has the text view only; an image model all but it
  const view = text ? "text" : loaders[id] && id !== "text" ? id : "input";
  document.querySelectorAll(".view").forEach((s) => s.classList.toggle("shown", s.id === view));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#${view}`));
  const key = `${state.input}|${view === "units" ? JSON.stringify(state.unit) : ""}`;
  if (loadedFor[view] !== key) { loadedFor[view] = key; loaders[view](); }
}

function setInput(id) {
  state.input = id;
  $("#input-select").value = id;
  show();
}

async function upload(file) {
  $("#upload-error").textContent = "";
  const form = new FormData();
  form.append("file", file);
  try {
    const r = await api("/api/upload", { method: "POST", body: form });
    fill($("#input-select"), r.inputs);
    setInput(r.id);
  } catch (e) {
    $("#upload-error").textContent = `Upload refused: ${e.message}`;
  }
}

async function start() {
  const info = state.info = await api("/api/info");
  $("#model-name").textContent = info.model;
  if (info.text) { startText(info); return; }
  fill($("#input-select"), info.inputs);
  fill($("#layer-select"), info.layers, (l) => l.name, (l) => `${l.name} · ${l.kind} ${l.shape.join("×")}`);
  fill($("#proj-layer"), info.layers, (l) => l.name, (l) => l.name);
  $("#proj-layer").value = info.layers[info.layers.length - 1].name;
  fill($("#proj-method"), info.projections);
  $("#proj-n").max = info.data;
  $("#proj-n").value = Math.min(200, info.data);
  fill($("#method-select"), info.methods, (m) => m.name, (m) => `${m.name} (${m.family})`);
  fill($("#attack-select"), info.attacks, (a) => a.name, (a) => `${a.name} · ${a.paper}`);
  $("#attack-note").textContent = info.attacks_without_eps.length ? `Not on the slider (no ε budget): ${info.attacks_without_eps.join(", ")}.` : "";
  state.epsGrid = info.eps_grid;
  $("#eps-slider").max = info.eps_grid.length - 1;
  state.layer = info.layers[0].name;

  $("#input-select").onchange = (e) => setInput(e.target.value);
  $("#upload").onchange = (e) => { if (e.target.files.length) upload(e.target.files[0]); };
  $("#layer-select").onchange = (e) => { state.layer = e.target.value; loadActivations(); };
  $("#show-select").onchange = loadActivations;
  const methodOptions = () => drawOptions($("#method-options"), (info.methods.find((m) => m.name === $("#method-select").value) || {}).options, loadAttribution);
  const attackOptions = () => drawOptions($("#attack-options"), (info.attacks.find((a) => a.name === $("#attack-select").value) || {}).options, () => { loadFlip(); loadEps(); });
  methodOptions(); attackOptions();
  $("#method-select").onchange = () => { methodOptions(); loadAttribution(); };
  $("#target-input").onchange = loadAttribution;
  $("#proj-run").onclick = loadProjection;
  const sampled = (info.scan ? info.scan.layers : []).filter((l) => l.sample);
  const showScan = () => { $("#proj-scan-label").hidden = !sampled.some((l) => l.name === $("#proj-layer").value); };
  $("#proj-layer").onchange = showScan;
  if (sampled.length) { $("#proj-layer").value = sampled[sampled.length - 1].name; $("#proj-scan").checked = true; }
  showScan();
  $("#attack-select").onchange = () => { attackOptions(); loadFlip(); loadEps(); };
  $("#eps-slider").oninput = loadEps;
  window.addEventListener("hashchange", show);
  document.body.dataset.ready = "true";
  setInput(info.inputs[0]);
}

start().catch((e) => { $("#upload-error").textContent = `The explorer could not start: ${e.message}`; });
