// The review page's script: the candidate table (sort, filter, search, pages), decisions and
// uploads, all through the JSON API. Data is written with textContent only, never as HTML.
"use strict";

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function number(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  return typeof v === "number" ? Number(v.toPrecision(digits || 4)).toString() : String(v);
}

function reviewer() {
  const input = document.getElementById("reviewer");
  return input ? input.value.trim() : "";
}

async function api(url, options) {
  const response = await fetch(url, Object.assign({credentials: "same-origin"}, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

async function decide(campaign, candidate, decision, comment) {
  const who = reviewer();
  if (!who) throw new Error("type your name under 'reviewer' (top right) first");
  return api(`/api/campaigns/${encodeURIComponent(campaign)}/candidates/${encodeURIComponent(candidate)}/decisions`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({decision: decision, reviewer: who, comment: comment || ""}),
  });
}

function setupReviewer() {
  const input = document.getElementById("reviewer");
  if (!input) return;
  input.value = localStorage.getItem("invdes-reviewer") || "";
  input.addEventListener("change", () => localStorage.setItem("invdes-reviewer", input.value.trim()));
}

function setupCampaign() {
  const section = document.getElementById("campaign");
  if (!section) return;
  const campaign = section.dataset.campaign;
  const objective = section.dataset.objective;
  const state = {sort: "rank", desc: false, page: 1};
  const saved = sessionStorage.getItem("invdes-query-" + campaign);
  if (saved) Object.assign(state, JSON.parse(saved));
  const search = document.getElementById("search");
  const filters = document.getElementById("filters");
  const perPage = document.getElementById("per-page");
  if (state.search) search.value = state.search;
  if (state.filters) filters.value = state.filters;
  if (state.perPage) perPage.value = state.perPage;
  const error = document.getElementById("query-error");

  function shown(columns) {
    const props = columns.filter(c => c.endsWith("_pred_mean")).map(c => c.slice(0, -10));
    return props;
  }

  async function load() {
    state.search = search.value; state.filters = filters.value; state.perPage = perPage.value;
    sessionStorage.setItem("invdes-query-" + campaign, JSON.stringify(state));
    const params = new URLSearchParams({sort: state.sort, desc: state.desc, page: state.page,
                                        per_page: perPage.value, search: search.value});
    for (const f of filters.value.split(";")) if (f.trim()) params.append("filter", f.trim());
    let table;
    try {
      table = await api(`/api/campaigns/${encodeURIComponent(campaign)}/candidates?${params}`);
      error.textContent = "";
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    render(table);
  }

  function header(label, column) {
    const th = el("th", label, {"data-column": column});
    if (state.sort === column) th.className = "sorted" + (state.desc ? " desc" : "");
    th.addEventListener("click", () => {
      if (state.sort === column) state.desc = !state.desc; else { state.sort = column; state.desc = false; }
      state.page = 1; load();
    });
    return th;
  }

  function render(table) {
    const head = document.getElementById("candidate-head");
    const body = document.getElementById("candidate-body");
    head.replaceChildren(); body.replaceChildren();
    const props = shown(table.columns);
    head.append(header("rank", "rank"), el("th", "picture"), header("id", "id"),
                header(section.dataset.label, "design"), header("round", "round"),
                header("status", "status"), header("origin", "origin"));
    for (const p of props) head.append(header(p + " predicted", p + "_pred_mean"), header(p, p));
    head.append(header("hit", "hit"), header("decision", "decision"), el("th", "decide"));
    for (const row of table.rows) {
      const tr = el("tr", null, {"data-id": row.id});
      if (row.decision) tr.className = "decision-" + row.decision;
      const link = el("a", row.id, {href: `/campaigns/${encodeURIComponent(campaign)}/candidates/${encodeURIComponent(row.id)}`});
      const img = el("img", null, {class: "thumb", loading: "lazy", alt: row.id,
        src: `/api/campaigns/${encodeURIComponent(campaign)}/candidates/${encodeURIComponent(row.id)}/depiction.svg`});
      const cells = [el("td", row.rank), el("td"), el("td"), el("td", row.design && row.design.length > 60 ? row.design.slice(0, 60) + "…" : row.design),
                     el("td", row.round), el("td", row.status), el("td", row.origin)];
      cells[1].append(img); cells[2].append(link);
      for (const p of props) {
        const mean = row[p + "_pred_mean"], std = row[p + "_pred_std"];
        cells.push(el("td", mean === null ? "-" : `${number(mean)} ± ${number(std, 2)}`));
        const value = row[p];
        const fid = row[p + "_fidelity"];
        cells.push(el("td", value === null ? "-" : `${number(value, 5)}${fid ? " (" + fid + ")" : ""}`));
      }
      cells.push(el("td", row.hit ? "yes" : ""));
      cells.push(el("td", row.decision ? `${row.decision} (${row.reviewer})` : ""));
      const actions = el("td", null, {class: "actions"});
      for (const d of ["approve", "reject", "flag"]) {
        const b = el("button", d, {type: "button", "data-decision": d});
        b.addEventListener("click", async () => {
          const comment = d === "approve" ? "" : (window.prompt(`comment for ${d} ${row.id} (optional)`) || "");
          try { await decide(campaign, row.id, d, comment); error.textContent = ""; load(); }
          catch (e) { error.textContent = e.message; }
        });
        actions.append(b);
      }
      cells.push(actions);
      tr.append(...cells);
      body.append(tr);
    }
    document.getElementById("page-info").textContent =
      `page ${table.page} of ${table.pages} (${table.total} candidates)`;
    document.getElementById("prev").disabled = table.page <= 1;
    document.getElementById("next").disabled = table.page >= table.pages;
  }

  document.getElementById("apply").addEventListener("click", () => { state.page = 1; load(); });
  search.addEventListener("keydown", e => { if (e.key === "Enter") { state.page = 1; load(); } });
  filters.addEventListener("keydown", e => { if (e.key === "Enter") { state.page = 1; load(); } });
  perPage.addEventListener("change", () => { state.page = 1; load(); });
  document.getElementById("prev").addEventListener("click", () => { state.page -= 1; load(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; load(); });

  const plotProperty = document.getElementById("plot-property");
  plotProperty.addEventListener("change", () => {
    for (const id of ["plot-distribution", "plot-parity"]) {
      const img = document.getElementById(id);
      img.src = `/api/campaigns/${encodeURIComponent(campaign)}/plots/${img.dataset.kind}.png?property=${encodeURIComponent(plotProperty.value)}`;
    }
  });

  document.getElementById("upload-button").addEventListener("click", async () => {
    const result = document.getElementById("upload-result");
    const file = document.getElementById("upload-file").files[0];
    if (!file) { result.className = "error"; result.textContent = "choose a CSV file first"; return; }
    const form = new FormData();
    form.append("file", file);
    const fidelity = document.getElementById("upload-fidelity").value;
    try {
      const out = await api(`/api/campaigns/${encodeURIComponent(campaign)}/lab-results?fidelity=${encodeURIComponent(fidelity)}`,
                            {method: "POST", body: form});
      result.className = "ok";
      result.textContent = `imported ${out.imported} ${out.fidelity} result(s) for ${out.designs} design(s)`;
      load();
    } catch (e) {
      result.className = "error";
      result.textContent = "nothing imported: " + e.message;
    }
  });
  load();
}

function setupCandidate() {
  const section = document.getElementById("candidate");
  if (!section) return;
  const error = document.getElementById("decide-error");
  document.getElementById("decide-button").addEventListener("click", async () => {
    try {
      await decide(section.dataset.campaign, section.dataset.candidate,
                   document.getElementById("decision").value, document.getElementById("comment").value);
      window.location.reload();
    } catch (e) { error.textContent = e.message; }
  });
}

document.addEventListener("DOMContentLoaded", () => { setupReviewer(); setupCampaign(); setupCandidate(); });
