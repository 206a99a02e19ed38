// cnnlab web app: plain JavaScript, no build step, nothing fetched from the internet.
// All numbers come from the server (cnnlab.explain, the model); this file only draws them.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  if (!message) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = message;
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: `HTTP ${res.status}` }; }
  if (!res.ok) { showError(body.error || `HTTP ${res.status}`); throw new Error(body.error); }
  showError("");
  return body;
}

const postJSON = (path, data) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(data) });
const fmt = (v) => (typeof v === "number" && !Number.isInteger(v)) ? String(+v.toPrecision(4)) : String(v);

// ---------------------------------------------------------------- tabs
const TABS = ["explorer", "model", "train"];
function selectTab(name) {
  for (const t of TABS) {
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`page-${t}`).hidden = t !== name;
  }
  if (name === "model") loadRuns();
  if (name === "train") loadRuns();
}
TABS.forEach((t, i) => {
  const tab = $(`tab-${t}`);
  tab.addEventListener("click", () => selectTab(t));
  tab.addEventListener("keydown", (e) => {
    const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (d) { const next = TABS[(i + d + TABS.length) % TABS.length]; selectTab(next); $(`tab-${next}`).focus(); }
  });
});

// ---------------------------------------------------------------- explorer
const LECTURE = { input: [[1, 0, 2], [3, 1, 0], [0, 0, 4]], filters: [[[1, 0], [0, 1]]] };
const ex = { input: LECTURE.input.map((r) => r.slice()), filters: LECTURE.filters.map((f) => f.map((r) => r.slice())),
             result: null, step: 0, timer: null };

function resize(m, rows, cols) {
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (m[i] && m[i][j] !== undefined ? m[i][j] : 0)));
}

function editGrid(container, matrix, label, onChange) {
  container.innerHTML = "";
  container.style.gridTemplateColumns = `repeat(${matrix[0].length}, auto)`;
  matrix.forEach((row, i) => row.forEach((v, j) => {
    const input = document.createElement("input");
    input.type = "number"; input.step = "any"; input.value = v;
    input.setAttribute("aria-label", `${label} row ${i + 1} column ${j + 1}`);
    input.dataset.row = i; input.dataset.col = j;
    input.addEventListener("input", () => {
      const n = parseFloat(input.value);
      if (!Number.isNaN(n)) { matrix[i][j] = n; onChange(); }
    });
    container.appendChild(input);
  }));
}

function buildEditors() {
  editGrid($("input-grid"), ex.input, "input", scheduleExplain);
  const box = $("filter-grids");
  box.innerHTML = "";
  ex.filters.forEach((f, n) => {
    const g = document.createElement("div");
    g.className = "editgrid";
    g.id = `filter-grid-${n}`;
    box.appendChild(g);
    editGrid(g, f, `filter ${n + 1}`, scheduleExplain);
  });
}

function syncSizes() {
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, parseInt(v, 10) || lo));
  ex.input = resize(ex.input, clamp($("in-rows").value, 1, 16), clamp($("in-cols").value, 1, 16));
  const kr = clamp($("k-rows").value, 1, 7), kc = clamp($("k-cols").value, 1, 7), count = clamp($("k-count").value, 1, 4);
  const filters = [];
  for (let n = 0; n < count; n++) filters.push(resize(ex.filters[n] || [[0]], kr, kc));
  ex.filters = filters;
  buildEditors();
  scheduleExplain();
}
["in-rows", "in-cols", "k-rows", "k-cols", "k-count"].forEach((id) => $(id).addEventListener("change", syncSizes));
["mode", "stride", "padding", "dilation", "activation", "pool", "pool-size", "pool-stride"].forEach(
  (id) => $(id).addEventListener("change", scheduleExplain));

$("lecture").addEventListener("click", () => {
  ex.input = LECTURE.input.map((r) => r.slice());
  ex.filters = LECTURE.filters.map((f) => f.map((r) => r.slice()));
  Object.entries({ "in-rows": 3, "in-cols": 3, "k-rows": 2, "k-cols": 2, "k-count": 1, stride: 1, padding: 0, dilation: 1,
                   "pool-size": 2, "pool-stride": 1 }).forEach(([id, v]) => { $(id).value = v; });
  $("mode").value = "correlate"; $("activation").value = "relu"; $("pool").value = "max";
  buildEditors();
  scheduleExplain();
});

$("in-image").addEventListener("change", async () => {
  const file = $("in-image").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("size", String(Math.max(parseInt($("in-rows").value, 10) || 8, 4)));
  form.append("invert", "no");
  form.append("file", file);
  let r;
  try { r = await api("/api/image", { method: "POST", body: form }); } catch (e) { return; }
  // grey levels 0..9 keep the arithmetic readable
  ex.input = r.pixels.map((row) => row.map((v) => Math.round(9 * v)));
  $("in-rows").value = ex.input.length; $("in-cols").value = ex.input[0].length;
  buildEditors();
  scheduleExplain();
});

let explainTimer = null;
function scheduleExplain() { clearTimeout(explainTimer); explainTimer = setTimeout(runExplain, 150); }

async function runExplain() {
  const num = (id) => parseInt($(id).value, 10);
  const req = { input: ex.input, filters: ex.filters, mode: $("mode").value, stride: num("stride"),
                padding: num("padding"), dilation: num("dilation"), activation: $("activation").value,
                pool: $("pool").value, pool_size: num("pool-size"), pool_stride: num("pool-stride") };
  try {
    ex.result = await postJSON("/api/explain", req);
  } catch (e) { return; }
  ex.step = Math.min(ex.step, ex.result.stages[0].cells.length - 1);
  renderExplain();
}

function table(matrix, cls, decorate) {
  const t = document.createElement("table");
  t.className = `grid ${cls || ""}`;
  matrix.forEach((row, i) => {
    const tr = t.insertRow();
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.textContent = v === null ? "" : fmt(v);
      if (decorate) decorate(td, i, j);
    });
  });
  return t;
}

function captioned(title, el) {
  const d = document.createElement("div");
  const c = document.createElement("div");
  c.className = "caption"; c.textContent = title;
  d.append(c, el);
  return d;
}

function renderExplain() {
  const r = ex.result, conv = r.stages[0];
  const cell = conv.cells[ex.step];
  const [f, oi, oj] = cell.index;
  const taps = new Set();
  cell.rows.forEach((a) => cell.cols.forEach((b) => taps.add(`${a},${b}`)));
  const view = $("conv-view");
  view.innerHTML = "";
  view.append(captioned("input (padding dashed)", table(conv.grid, "", (td, i, j) => {
    if (conv.roles[i][j] === 1) td.classList.add("pad");
    if (taps.has(`${i},${j}`)) td.classList.add("tap");
  })));
  conv.applied.forEach((k, n) => view.append(captioned(
    `filter ${n + 1}${conv.mode === "convolve" ? " (flipped)" : ""}`, table(k, "filter"))));
  const perFilter = conv.output[0].length * conv.output[0][0].length;
  conv.output.forEach((out, n) => view.append(captioned(`output ${conv.output.length > 1 ? n + 1 : ""}`,
    table(out, "out", (td, i, j) => {
      const k = n * perFilter + i * out[0].length + j;
      if (k === ex.step) td.classList.add("current"); else if (k < ex.step) td.classList.add("done");
    }))));
  $("cell-text").textContent = cell.text;
  $("step-pos").textContent = `window ${ex.step + 1} of ${conv.cells.length} (filter ${f + 1}, row ${oi}, col ${oj})`;
  $("shape-text").textContent = r.stages.filter((s) => s.shape).map((s) => `${s.label}\n  ${s.shape.join("\n  ")}`).join("\n");
  const later = $("later-stages");
  later.innerHTML = "";
  r.stages.slice(1).forEach((s) => {
    s.output.forEach((m, c) => later.append(captioned(`${s.label}${s.output.length > 1 ? ` [${c + 1}]` : ""}`, table(m, "out"))));
  });
  const pool = r.stages.find((s) => s.kind === "pool");
  if (pool) later.append(captioned("pool windows", Object.assign(document.createElement("pre"), {
    className: "arith", textContent: pool.cells.slice(0, 8).map((c) => c.text).join("\n") })));
  $("answer").textContent = Array.isArray(r.answer) ? JSON.stringify(r.answer) : fmt(r.answer);
  const mf = $("matrix-form");
  mf.innerHTML = "";
  if (r.matrix_form) {
    mf.append(captioned("M", table(r.matrix_form.matrix, "small")),
              captioned("vec(I)", table(r.matrix_form.vec_input.map((v) => [v]), "small")),
              captioned("M vec(I)", table(r.matrix_form.product.map((v) => [v]), "small")));
    mf.className = "row";
  } else {
    mf.textContent = "The matrix form is shown for small inputs only.";
  }
}

function step(d) {
  if (!ex.result) return;
  const n = ex.result.stages[0].cells.length;
  ex.step = (ex.step + d + n) % n;
  renderExplain();
}
$("step-back").addEventListener("click", () => step(-1));
$("step-fwd").addEventListener("click", () => step(1));
$("step-play").addEventListener("click", () => {
  if (ex.timer) { clearInterval(ex.timer); ex.timer = null; $("step-play").textContent = "play"; return; }
  ex.timer = setInterval(() => step(1), 900);
  $("step-play").textContent = "pause";
});
$("page-explorer").addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (e.key === "ArrowRight") step(1);
  if (e.key === "ArrowLeft") step(-1);
});

// ---------------------------------------------------------------- drawing helpers
function heat(canvas, m, scale) {
  const rows = m.length, cols = m[0].length;
  canvas.width = cols; canvas.height = rows;
  canvas.style.width = `${cols * scale}px`; canvas.style.height = `${rows * scale}px`;
  const flat = m.flat(), lo = Math.min(...flat), hi = Math.max(...flat), span = hi - lo || 1;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(cols, rows);
  flat.forEach((v, k) => {
    const g = Math.round(255 * (v - lo) / span);
    img.data.set([g, g, g, 255], 4 * k);
  });
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function diverging(canvas, m, scale) {
  const rows = m.length, cols = m[0].length;
  canvas.width = cols; canvas.height = rows;
  canvas.style.width = `${cols * scale}px`; canvas.style.height = `${rows * scale}px`;
  const flat = m.flat(), top = Math.max(...flat.map(Math.abs)) || 1;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(cols, rows);
  flat.forEach((v, k) => {
    const t = Math.abs(v) / top, c = Math.round(255 * (1 - t));
    img.data.set(v >= 0 ? [255, c, c, 255] : [c, c, 255, 255], 4 * k);
  });
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function lineSVG(values, width, height) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * (width - 4) + 2},${height - 2 - ((v - lo) / span) * (height - 4)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.join(" ")); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3182bd");
  svg.appendChild(line);
  return svg;
}

function filterTiles(box, filters, scale) {
  box.innerHTML = "";
  if (!filters) { box.textContent = "(no conv layer)"; return; }
  filters.forEach((f) => {
    // (C, kH, kW) or (C, k): show the first input channel
    const m = Array.isArray(f[0][0]) ? f[0] : [f[0]];
    box.appendChild(diverging(document.createElement("canvas"), m, scale));
  });
}

// ---------------------------------------------------------------- model viewer
const mv = { info: null, input: null };

async function loadRuns() {
  let data;
  try { data = await api("/api/runs"); } catch (e) { return; }
  const sel = $("ckpt"), keep = sel.value;
  sel.innerHTML = "";
  data.runs.forEach((r) => r.checkpoints.forEach((c) => sel.add(new Option(c, c))));
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  const runs = $("t-runs"), keepRun = runs.value;
  runs.innerHTML = "";
  data.runs.filter((r) => r.metrics).forEach((r) => runs.add(new Option(`${r.name}${r.running ? " (training)" : ""}`, r.name)));
  if (keepRun) runs.value = keepRun;
  if (sel.value && (!mv.info || mv.info.checkpoint !== sel.value)) loadModel();
}
$("ckpt-refresh").addEventListener("click", loadRuns);
$("ckpt").addEventListener("change", loadModel);

async function loadModel() {
  const ckpt = $("ckpt").value;
  if (!ckpt) return;
  let info;
  try { info = await api(`/api/model?checkpoint=${encodeURIComponent(ckpt)}`); } catch (e) { return; }
  // a slower answer for a checkpoint picked earlier must not replace the one picked since
  if ($("ckpt").value !== ckpt) return;
  mv.info = info;
  const i = info;
  $("model-info").textContent = `${i.data || "?"}, input ${JSON.stringify(i.input_shape)}, ` +
    `${i.layers.length} layers: ${i.layers.map((l) => l.type).join(" > ")}`;
  filterTiles($("model-filters"), i.filters, 16);
  $("draw").hidden = i.signal; $("signal").hidden = !i.signal;
  $("probs").innerHTML = ""; $("maps").innerHTML = ""; $("model-cell").textContent = "";
}

const canvas = $("draw"), pen = canvas.getContext("2d");
function clearCanvas() { pen.fillStyle = "black"; pen.fillRect(0, 0, canvas.width, canvas.height); }
clearCanvas();
let drawing = false;
function penAt(e) { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; }
canvas.addEventListener("pointerdown", (e) => { drawing = true; const [x, y] = penAt(e); pen.beginPath(); pen.moveTo(x, y); });
canvas.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = penAt(e);
  pen.strokeStyle = "white"; pen.lineWidth = 22; pen.lineCap = "round"; pen.lineJoin = "round";
  pen.lineTo(x, y); pen.stroke();
});
window.addEventListener("pointerup", () => { if (drawing) { drawing = false; predictCanvas(); } });
$("draw-clear").addEventListener("click", () => { clearCanvas(); mv.input = null; });
$("predict").addEventListener("click", predictCanvas);

function canvasPixels() {
  const [, h, w] = mv.info.input_shape;
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  const ctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(canvas, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h).data, out = [];
  for (let i = 0; i < h; i++) { const row = []; for (let j = 0; j < w; j++) row.push(data[4 * (i * w + j)] / 255); out.push(row); }
  return out;
}

function paintPixels(pixels) {
  const tmp = heat(document.createElement("canvas"), pixels.map((r) => r.map((v) => v)), 1);
  pen.imageSmoothingEnabled = false;
  clearCanvas();
  pen.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

async function predictCanvas() {
  if (!mv.info || mv.info.signal) return;
  mv.input = canvasPixels();
  await predict();
}

async function predict() {
  let r;
  try { r = await postJSON("/api/predict", { checkpoint: mv.info.checkpoint, input: mv.input }); } catch (e) { return; }
  const probs = $("probs");
  probs.innerHTML = "";
  (r.probabilities || []).forEach((p, k) => {
    const bar = document.createElement("div");
    bar.className = `bar${k === r.predicted ? " top" : ""}`;
    const name = r.classes ? r.classes[k] : k;
    bar.innerHTML = `<span class="name"></span><span class="fill" style="width:${Math.round(200 * p)}px"></span><span class="p"></span>`;
    bar.querySelector(".name").textContent = name;
    bar.querySelector(".p").textContent = `${(100 * p).toFixed(1)}%`;
    probs.appendChild(bar);
  });
  probs.dataset.predicted = r.predicted;
  const maps = $("maps");
  maps.innerHTML = "";
  $("cell-window").innerHTML = "";
  mv.layers = r.layers;
  r.layers.filter((l) => l.maps).forEach((l) => {
    const div = document.createElement("div");
    div.className = "layer";
    const h = document.createElement("h4");
    h.textContent = `${l.name}: ${l.type} ${JSON.stringify(l.shape)}`;
    const row = document.createElement("div");
    row.className = "maps";
    l.maps.forEach((m, c) => {
      if (!Array.isArray(m[0])) { row.appendChild(lineSVG(m, 110, 50)); return; }
      const cv = heat(document.createElement("canvas"), m, Math.max(2, Math.floor(84 / m[0].length)));
      if (l.conv) {
        cv.classList.add("clickable");
        cv.tabIndex = 0;
        cv.setAttribute("aria-label", `layer ${l.name} channel ${c}: click a cell`);
        cv.addEventListener("click", (e) => {
          const b = cv.getBoundingClientRect();
          const row = Math.floor((e.clientY - b.top) / b.height * m.length);
          const col = Math.floor((e.clientX - b.left) / b.width * m[0].length);
          heat(cv, m, Math.max(2, Math.floor(84 / m[0].length)));
          const ctx = cv.getContext("2d");
          ctx.fillStyle = "rgba(230, 85, 13, 0.9)";
          ctx.fillRect(col, row, 1, 1);  // the clicked cell
          explainCell(l.name, c, row, col);
        });
        cv.addEventListener("keydown", (e) => { if (e.key === "Enter") explainCell(l.name, c, 0, 0); });
      }
      row.appendChild(cv);
    });
    div.append(h, row);
    maps.appendChild(div);
  });
}

// The clicked cell's window on the layer's input: the model input for the first layer, else the
// previous layer's maps; the window's rows and cols are of the padded input, so the pads come off.
function showWindow(layer, r) {
  const box = $("cell-window");
  box.innerHTML = "";
  const k = (mv.layers || []).findIndex((l) => l.name === layer);
  if (k < 0) return;
  const x = mv.input;
  const inputs = k > 0 ? mv.layers[k - 1].maps : (x && Array.isArray(x[0]) && Array.isArray(x[0][0]) ? x : [x]);
  if (!inputs || !Array.isArray(inputs[0]) || !Array.isArray(inputs[0][0])) return;  // signals: the text says it
  const [[top], [left]] = r.pads;
  inputs.forEach((m) => {
    const cv = heat(document.createElement("canvas"), m, Math.max(2, Math.floor(84 / m[0].length)));
    const ctx = cv.getContext("2d");
    ctx.fillStyle = "rgba(230, 85, 13, 0.75)";
    r.rows.forEach((i) => r.cols.forEach((j) => ctx.fillRect(j - left, i - top, 1, 1)));
    box.appendChild(cv);
  });
}

async function explainCell(layer, channel, row, col) {
  try {
    const r = await postJSON("/api/cell", { checkpoint: mv.info.checkpoint, input: mv.input, layer, channel, row, col });
    $("model-cell").textContent = `layer ${layer}, channel ${channel}, cell (${row}, ${col}); window rows ` +
      `${r.rows.join(",")} cols ${r.cols.join(",")} of the padded input\n${r.text}`;
    showWindow(layer, r);
  } catch (e) { /* shown */ }
}

$("example-load").addEventListener("click", async () => {
  if (!mv.info) return;
  let r;
  try { r = await api(`/api/example?checkpoint=${encodeURIComponent(mv.info.checkpoint)}&index=${$("example-index").value}`); }
  catch (e) { return; }
  $("example-label").textContent = `label: ${r.class}`;
  mv.input = r.input;
  if (mv.info.signal) {
    const svg = $("signal"), fresh = lineSVG(r.input[0], 280, 140);
    svg.innerHTML = fresh.innerHTML;
  } else {
    paintPixels(r.input[0]);
  }
  await predict();
});

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file || !mv.info) return;
  const form = new FormData();
  form.append("checkpoint", mv.info.checkpoint);
  form.append("file", file);
  let r;
  try { r = await api("/api/image", { method: "POST", body: form }); } catch (e) { return; }
  mv.input = r.pixels;
  paintPixels(r.pixels);
  await predict();
});

// ---------------------------------------------------------------- training monitor
const tm = { source: null, records: [] };

function chart(svgId, series, title) {
  const svg = $(svgId), W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), L = 44, B = 26, T = 20;
  svg.innerHTML = "";
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, v));
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  add("text", { x: L, y: 14 }, title);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return;
  const xmax = Math.max(2, ...pts.map((p) => p[0])), ys = pts.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const X = (x) => L + (x - 1) / (xmax - 1) * (W - L - 10), Y = (y) => H - B - (y - lo) / (hi - lo) * (H - B - T);
  add("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  add("text", { x: 2, y: Y(hi) + 4 }, fmt(+hi.toPrecision(3)));
  add("text", { x: 2, y: Y(lo) + 4 }, fmt(+lo.toPrecision(3)));
  add("text", { x: W - 60, y: H - 6 }, `epoch ${xmax}`);
  series.forEach((s, k) => {
    if (!s.points.length) return;
    add("polyline", { points: s.points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: s.color,
                      "stroke-width": 2, class: `series-${s.name}` });
    s.points.forEach((p) => add("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: s.color, class: "point" }));
    add("text", { x: W - 120, y: 14 + 13 * k, fill: s.color }, s.name);
  });
}

function drawCharts() {
  const pick = (key) => tm.records.filter((r) => typeof r[key] === "number").map((r) => [r.epoch, r[key]]);
  chart("chart-loss", [{ name: "train loss", color: "#3182bd", points: pick("train_loss") },
                       { name: "val loss", color: "#e6550d", points: pick("val_loss") }], "loss");
  chart("chart-acc", [{ name: "train acc", color: "#3182bd", points: pick("train_acc") },
                      { name: "val acc", color: "#e6550d", points: pick("val_acc") }], "accuracy");
}

function watch(run) {
  if (tm.source) tm.source.close();
  tm.records = [];
  drawCharts();
  $("t-status").textContent = `watching ${run}`;
  const src = new EventSource(`/api/runs/${encodeURIComponent(run)}/events`);
  tm.source = src;
  src.addEventListener("epoch", (e) => {
    const r = JSON.parse(e.data);
    tm.records.push(r);
    $("t-status").textContent = `${run}: epoch ${r.epoch}, train loss ${fmt(r.train_loss)}` +
      (typeof r.val_acc === "number" ? `, val accuracy ${(100 * r.val_acc).toFixed(1)}%` : "");
    drawCharts();
  });
  src.addEventListener("filters", (e) => filterTiles($("t-filters"), JSON.parse(e.data).filters, 10));
  src.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    $("t-status").textContent += d.finished ? " (finished)" : " (stopped)";
    src.close();
    loadRuns();
  });
}

$("t-start").addEventListener("click", async () => {
  const req = { data: $("t-data").value, model: $("t-model").value.trim(), epochs: parseInt($("t-epochs").value, 10) };
  const limit = parseInt($("t-limit").value, 10);
  if (!Number.isNaN(limit)) req.limit = limit;
  let r;
  try { r = await postJSON("/api/train", req); } catch (e) { return; }
  watch(r.run);
});
$("t-stop").addEventListener("click", async () => { try { await postJSON("/api/train/stop", {}); } catch (e) { /* shown */ } });
$("t-watch").addEventListener("click", () => { if ($("t-runs").value) watch($("t-runs").value); });

// ---------------------------------------------------------------- start
buildEditors();
runExplain();
