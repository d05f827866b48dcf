// The try-it page: POST the text to /predict, show the entities inline. No external assets.
"use strict";

const PALETTE = ["#ffd166", "#8ecae6", "#b5e48c", "#f4a3c1", "#cdb4db", "#ffb38a", "#a0e7e5",
                 "#e9c46a", "#bde0fe", "#d8f3dc"];
const colours = new Map();

function colour(label) {
  if (!colours.has(label)) colours.set(label, PALETTE[colours.size % PALETTE.length]);
  return colours.get(label);
}

function headers() {
  const h = {"Content-Type": "application/json"};
  const key = document.getElementById("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function renderLegend(labels) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const label of labels) {
    const item = document.createElement("span");
    item.className = "swatch";
    item.dataset.label = label;
    item.style.background = colour(label);
    item.textContent = label;
    legend.append(item);
  }
}

function renderEntities(text, entities) {
  const result = document.getElementById("result");
  result.replaceChildren();
  let cursor = 0;
  for (const e of entities) {
    result.append(document.createTextNode(text.slice(cursor, e.start)));
    const mark = document.createElement("mark");
    mark.className = "entity";
    mark.dataset.label = e.entity_group;
    mark.dataset.start = e.start;
    mark.dataset.end = e.end;
    mark.style.background = colour(e.entity_group);
    const score = e.score === null || e.score === undefined ? "no score" : e.score.toFixed(3);
    mark.title = e.entity_group + " · score " + score;
    mark.append(document.createTextNode(text.slice(e.start, e.end)));
    const tag = document.createElement("span");
    tag.className = "label";
    tag.textContent = e.entity_group;
    mark.append(tag);
    result.append(mark);
    cursor = e.end;
  }
  result.append(document.createTextNode(text.slice(cursor)));
}

async function tag() {
  const text = document.getElementById("text").value;
  setStatus("tagging…", false);
  try {
    const response = await fetch("/predict", {
      method: "POST", headers: headers(), body: JSON.stringify({inputs: text}),
    });
    const body = await response.json();
    document.getElementById("json").textContent = JSON.stringify(body, null, 2);
    if (!response.ok) {
      setStatus(response.status + ": " + body.error, true);
      return;
    }
    const seen = [...new Set(body.map(e => e.entity_group))];
    renderLegend([...new Set([...colours.keys(), ...seen])]);
    renderEntities(text, body);
    const ms = response.headers.get("X-Inference-Time");
    setStatus(body.length + " entities" + (ms ? " · " + ms + " ms inference" : ""), false);
  } catch (err) {
    setStatus("request failed: " + err, true);
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/info", {headers: headers()});
    if (!response.ok) {
      document.getElementById("model").textContent = "model info needs the API key";
      return;
    }
    const info = await response.json();
    document.getElementById("model").textContent =
      info.model.file + " · " + info.model.architecture + " · tagsure " + info.tagsure_version;
    renderLegend(info.model.entity_types);
  } catch (err) {
    document.getElementById("model").textContent = "server unreachable";
  }
}

document.getElementById("tag").addEventListener("click", tag);
document.getElementById("key").addEventListener("change", loadInfo);
loadInfo();
