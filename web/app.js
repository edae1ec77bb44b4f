// estate-advisor web page: plain JavaScript, no build step. It reads the model's own
// instance schema (GET predict) to build the form, then calls predict, explain, analyze
// (the deal panel) and chat.
"use strict";

const API = window.ESTATE_CONFIG;
const KEY_FIELDS = [
  "Neighborhood", "Overall.Qual", "area", "Year.Built", "Total.Bsmt.SF", "Garage.Cars",
  "Full.Bath", "Bedroom.AbvGr", "Lot.Area", "Kitchen.Qual", "House.Style", "Year.Remod.Add",
];
const state = { schema: null, house: null, output: null, history: [] };
// How people write the deal table's figures (acronyms in capitals, the rest as words).
const FIGURE_NAMES = {
  noi: "NOI (net operating income)", dscr: "DSCR (debt service coverage)",
  cap_rate: "Cap rate", cash_on_cash: "Cash-on-cash return",
  break_even_rent: "Break-even rent", monthly_cash_flow: "Cash flow per month",
  annual_cash_flow: "Cash flow per year",
};
const figureName = (k) => FIGURE_NAMES[k] || (k.charAt(0).toUpperCase() + k.slice(1)).replaceAll("_", " ");
const featureName = (name) => (state.schema?.properties?.[name]?.title) || name;
const money = (v) => "$" + Math.round(v).toLocaleString("en-US");
const $ = (id) => document.getElementById(id);

async function call(url, body) {
  // Behind API Gateway the page sends its browser-restricted key in a header (never the URL).
  const headers = API.apiKey ? { "x-api-key": API.apiKey } : {};
  const init = body === undefined ? { headers } : {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(url, init);
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const fields = (data.errors || []).map((e) => `${e.field}: ${e.message}`);
    throw new Error([data.detail || data.title || response.status, ...fields].join("\n"));
  }
  return data;
}

function fieldInput(name, spec, value) {
  const label = document.createElement("label");
  label.textContent = spec.title && spec.title !== name ? spec.title : name;
  label.title = spec.description || name;
  let input;
  if (spec["x-categories"]) {
    input = document.createElement("select");
    const options = [...spec["x-categories"]];
    if (value !== null && value !== undefined && !options.includes(String(value))) {
      options.unshift(String(value));
    }
    for (const option of options) input.add(new Option(option, option));
    input.value = value === null || value === undefined ? spec["x-impute"] : String(value);
    input.dataset.kind = "category";
  } else {
    input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.value = value === null || value === undefined ? "" : value;
    input.placeholder = `median ${spec["x-impute"]}`;
    input.dataset.kind = "number";
  }
  input.name = name;
  label.appendChild(input);
  return label;
}

function buildForm() {
  const props = state.schema.properties;
  const names = Object.keys(props);
  let keys = KEY_FIELDS.filter((n) => n in props);
  if (keys.length === 0) keys = names.slice(0, 10);
  const others = names.filter((n) => !keys.includes(n));
  for (const n of keys) $("key-fields").appendChild(fieldInput(n, props[n], state.house[n]));
  for (const n of others) $("other-fields").appendChild(fieldInput(n, props[n], state.house[n]));
  $("other-count").textContent = String(others.length);
}

function readProperty() {
  const instance = {};
  for (const el of $("property-form").querySelectorAll("input, select")) {
    if (el.value === "") continue;
    instance[el.name] = el.dataset.kind === "number" ? Number(el.value) : el.value;
  }
  return instance;
}

function showError(box, error) {
  box.textContent = error.message;
  box.hidden = false;
}

async function estimate(event) {
  if (event) event.preventDefault();
  $("property-errors").hidden = true;
  const instance = readProperty();
  try {
    const result = await call(API.predict, { instances: [instance], parameters: { comparables: 5 } });
    showEstimate(result.predictions[0], result.model);
    showComparables(result.predictions[0].comparables, result.comparables_unavailable);
  } catch (error) {
    showError($("property-errors"), error);
    return;
  }
  try {
    const explained = await call(API.explain, { instances: [instance], top_k: 8 });
    drawWaterfall(explained.explanations[0]);
  } catch (error) {
    $("explain-section").hidden = true;
    console.warn("explain unavailable:", error.message);
  }
}

function showEstimate(prediction, model) {
  const value = prediction[state.output];
  $("estimate-section").hidden = false;
  $("estimate-value").textContent = money(value);
  const interval = prediction.interval;
  if (interval) {
    $("estimate-interval").textContent =
      `${Math.round(interval.level * 100)}% interval: ${money(interval.lower)} – ${money(interval.upper)}` +
      ` · model ${model.name} ${model.version}`;
    const lo = interval.lower * 0.8, hi = interval.upper * 1.2;
    const pct = (v) => `${(100 * (v - lo)) / (hi - lo)}%`;
    const range = $("interval-bar").querySelector(".range");
    range.style.left = pct(interval.lower);
    range.style.width = `calc(${pct(interval.upper)} - ${pct(interval.lower)})`;
    $("interval-bar").querySelector(".point").style.left = pct(value);
  }
  const list = $("estimate-warnings");
  list.replaceChildren();
  for (const w of prediction.warnings || []) {
    const item = document.createElement("li");
    item.textContent = `${featureName(w.field)}: ${w.message}`;
    list.appendChild(item);
  }
}

// The 5 training sales most like this house: what they sold for, when, how far away, and
// where each differs most (the predict function's "parameters": {"comparables": 5}).
function showComparables(sales, unavailable) {
  const section = $("comparables-section");
  section.hidden = false;
  const table = $("comparables-table");
  table.replaceChildren();
  $("comparables-note").textContent = unavailable || "";
  table.hidden = !sales;
  if (!sales) return;
  const fields = sales.length ? Object.keys(sales[0].fields) : [];
  const head = table.createTHead().insertRow();
  for (const text of ["Sold for", "Sold", "Distance", ...fields.map(featureName), "Main differences (theirs vs this house)"]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const sale of sales) {
    const row = body.insertRow();
    const where = sale.km === null || sale.km === undefined ? "" : `${sale.km.toFixed(1)} km`;
    const cells = [money(sale.price), sale.sale_date || "", where, ...fields.map((f) => sale.fields[f] ?? "")];
    cells.push(sale.differences.map((d) => d.text).join("; ") || "alike in what matters");
    for (const text of cells) row.insertCell().textContent = String(text);
  }
}

function svg(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Waterfall: from the base value (the average house) through each driver's dollar
// effect to this house's estimate. Drivers are applied in the order the function sorts them.
function drawWaterfall(explanation) {
  const steps = waterfallSteps(explanation);
  const chart = $("waterfall");
  chart.replaceChildren();
  $("explain-section").hidden = false;
  const rowH = 28, labelW = 300, width = 760, barW = width - labelW - 190;
  chart.setAttribute("viewBox", `0 0 ${width} ${rowH * steps.length + 10}`);
  const values = steps.flatMap((s) => [s.from, s.to]);
  const span = Math.max(...values) - Math.min(...values) || 1;
  const lo = Math.min(...values) - 0.25 * span, hi = Math.max(...values);
  const x = (v) => labelW + ((v - lo) / (hi - lo)) * barW;
  steps.forEach((s, i) => {
    const y = i * rowH + 5;
    const from = s.kind === "total" ? lo : s.from;  // totals are bars from the axis
    const left = Math.min(x(from), x(s.to));
    const w = Math.max(2, Math.abs(x(s.to) - x(from)));
    const cls = s.kind === "total" ? "bar-total" : s.to >= s.from ? "bar-up" : "bar-down";
    chart.appendChild(svg("text", { x: labelW - 8, y: y + 17, "text-anchor": "end", class: "label" }, s.label));
    chart.appendChild(svg("rect", { x: left, y, width: w, height: rowH - 8, class: cls }));
    chart.appendChild(svg("text", { x: left + w + 6, y: y + 17, class: "amount" }, s.amount));
  });
}

function waterfallSteps(e) {
  const out = state.output;
  const base = e.base_value[out];
  const steps = [{ kind: "total", label: "Average house", from: base, to: base, amount: money(base) }];
  let running = base;
  const step = (label, effect, factor) => {
    const sign = effect >= 0 ? "+" : "−";
    const times = factor === undefined ? "" : ` (×${factor.toFixed(3)})`;
    steps.push({ kind: "step", label, from: running, to: running + effect,
                 amount: `${sign}${money(Math.abs(effect))}${times}` });
    running += effect;
  };
  for (const c of e.contributions) {
    const value = typeof c.value === "number" ? c.value.toLocaleString("en-US") : c.value;
    const unit = c.unit && !/^\d/.test(c.unit) && c.unit !== "count" ? ` ${c.unit}` : "";
    step(`${c.label || c.feature} = ${value}${unit}`, c.effect, c.factor);
  }
  if (e.other_features) {
    step(`${e.other_features.features} other features`, e.other_features.effect, e.other_features.factor);
  }
  steps.push({ kind: "total", label: "This house", from: e[out], to: e[out], amount: money(e[out]) });
  return steps;
}

function readDeal() {
  const terms = {};
  for (const el of $("deal-form").querySelectorAll("input")) {
    if (el.value !== "") terms[el.name] = Number(el.value);
  }
  return terms;
}

// Chat sees the deal panel's terms too (its `deal` calls the rate `rate`), so a question
// about cash flow is answered on the same terms, by the same core, as the panel.
async function ask(content) {
  const messages = [...state.history, { role: "user", content }];
  const { interest_rate: rate, ...rest } = readDeal();
  const deal = rate === undefined ? rest : { ...rest, rate };
  const answer = await call(API.chat, { messages, property: readProperty(), deal });
  state.history = [...messages, { role: "assistant", content: answer.reply }];
  return answer;
}

// The deal panel calls the analyze function: the house from the form, the terms typed
// here; every term it used comes back marked given or default (chat uses the same core).
async function analyseDeal(event) {
  event.preventDefault();
  $("deal-errors").hidden = true;
  $("deal-result").hidden = true;
  let result;
  try {
    result = await call(API.analyze, { property: readProperty(), terms: readDeal() });
  } catch (error) {
    showError($("deal-errors"), error);
    return;
  }
  const deal = result.deal;
  $("deal-result").hidden = false;
  $("deal-reply").textContent = deal.verdict.summary;
  const body = $("deal-table").querySelector("tbody");
  body.replaceChildren();
  const rows = [["Estimate", money(result.valuation.price)]];
  if (deal.verdict.price) rows.push(["Verdict", `asking price ${deal.verdict.price} the model's interval`]);
  for (const [k, v] of Object.entries(deal.analysis)) rows.push([figureName(k), formatFigure(k, v)]);
  for (const [k, v] of rows) {
    const row = body.insertRow();
    row.insertCell().textContent = k;
    row.insertCell().textContent = v;
  }
  const used = $("deal-assumptions");
  used.replaceChildren();
  for (const [term, a] of Object.entries(deal.assumptions)) {
    const item = document.createElement("li");
    const value = a.unit.startsWith("dollars") ? money(a.value) : `${a.value}`;
    item.textContent = `${termName(term)}: ${value} (${a.unit}) — ${a.source === "given" ? "given" : `default: ${a.basis}`}`;
    item.dataset.source = a.source;
    used.appendChild(item);
  }
  for (const w of deal.warnings) {
    const item = document.createElement("li");
    item.textContent = `${w.field}: ${w.message}`;
    used.appendChild(item);
  }
}

const termName = (k) => (k.charAt(0).toUpperCase() + k.slice(1)).replaceAll("_", " ");

const RATIOS = new Set(["gross_yield", "net_yield", "cap_rate", "cash_on_cash"]);

function formatFigure(key, value) {
  if (value === null || value === undefined) return "—";  // e.g. no DSCR without a loan
  if (typeof value !== "number") return String(value);
  if (RATIOS.has(key)) return `${(100 * value).toFixed(2)}%`;
  if (key === "dscr") return value.toFixed(2);
  return money(value);
}

function appendChat(role, text) {
  const item = document.createElement("p");
  item.className = `msg ${role}`;
  item.textContent = text;
  $("chat-log").appendChild(item);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  appendChat("user", text);
  try {
    const answer = await ask(text);
    appendChat("assistant", answer.reply);
  } catch (error) {
    appendChat("error", error.message);
  }
}

// The serving bundle's model card (data, metrics, intended use, limits), as its Markdown.
async function showCard(link) {
  if (!link) return;
  try {
    const url = `${API.predict.replace(/\/+$/, "")}/model_card.md`;
    const headers = API.apiKey ? { "x-api-key": API.apiKey } : {};
    const response = await fetch(url, { headers });
    if (!response.ok) throw new Error(response.statusText);
    $("model-card").textContent = await response.text();
    $("card-section").hidden = false;
  } catch (error) {
    console.warn("model card unavailable:", error.message);
  }
}

async function start() {
  try {
    const [info, house] = await Promise.all([call(API.predict), fetch("example_house.json").then((r) => r.json())]);
    state.schema = info.instance_schema;
    state.output = info.model.output.name;
    state.house = house;
    $("model-badge").textContent = `model ${info.model.name} · ${info.model.version} · ${info.model.chosen}`;
    buildForm();
    showCard(info.model_card);
    $("property-form").addEventListener("submit", estimate);
    $("deal-form").addEventListener("submit", analyseDeal);
    $("chat-form").addEventListener("submit", sendChat);
    document.body.dataset.ready = "true";
  } catch (error) {
    $("model-badge").textContent = `cannot reach the predict function at ${API.predict}: ${error.message}`;
    $("model-badge").classList.add("error");
  }
}

start();
