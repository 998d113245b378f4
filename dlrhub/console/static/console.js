// dlrhub console: the little script the pages need (no inline script: the CSP forbids it).
// - <time datetime> gets the browser's local time beside the UTC text;
// - form[data-api] makes its change through the /v1 API with the page's CSRF token;
//   fields with data-type="integer"|"boolean" go as JSON numbers or booleans; a submit
//   button with data-preview sends the form with dry_run: true and writes the answer's
//   detail into the element named by the form's data-preview (nothing changes);
// - [data-refresh=N] reloads the page every N seconds while the tab is visible;
// - table[data-tail] follows new events from /v1/events (live tail).
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function say(text, failed) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("failed", Boolean(failed));
}

function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach((node) => {
    if (node.dataset.localized) return;
    const moment = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) return;
    node.dataset.localized = "1";
    const local = document.createElement("span");
    local.className = "local";
    local.textContent = "(" + moment.toLocaleString() + " local)";
    node.after(local);
  });
}

function typed(form, body) {
  form.querySelectorAll("[name][data-type]").forEach((node) => {
    const key = node.name.endsWith("[]") ? node.name.slice(0, -2) : node.name;
    if (!(key in body)) return;
    const convert = node.dataset.type === "integer"
      ? (value) => (typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value)
      : (value) => value === true || value === "true";
    body[key] = Array.isArray(body[key]) ? body[key].map(convert) : convert(body[key]);
  });
  return body;
}

async function callApi(form, extra) {
  const method = (form.dataset.method || "POST").toUpperCase();
  const body = {};
  new FormData(form).forEach((value, name) => {
    if (value === "") return;
    if (name.endsWith("[]")) {
      const key = name.slice(0, -2);
      (body[key] = body[key] || []).push(value);
    } else {
      body[name] = value;
    }
  });
  typed(form, body);
  Object.assign(body, extra || {});
  const options = {
    method: method,
    headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
    credentials: "same-origin",
  };
  if (method !== "GET" && method !== "DELETE") {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(form.dataset.api, options);
  let answer = null;
  try { answer = await response.json(); } catch (error) { answer = null; }
  return { response, answer };
}

function selectedInto(form) {
  // A bulk form names a checkbox group (data-select="name"): the checked values go as ids[].
  const group = form.dataset.select;
  if (!group) return true;
  form.querySelectorAll("input[data-picked]").forEach((node) => node.remove());
  const picked = document.querySelectorAll('input[type="checkbox"][name="' + group + '"]:checked');
  if (picked.length === 0) { say("Select at least one row first.", true); return false; }
  picked.forEach((box) => {
    const hidden = document.createElement("input");
    hidden.type = "hidden"; hidden.name = "ids[]"; hidden.value = box.value;
    hidden.dataset.picked = "1";
    if (box.dataset.type) hidden.dataset.type = box.dataset.type;
    form.appendChild(hidden);
  });
  return true;
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
  event.preventDefault();
  if (event.submitter && event.submitter.hasAttribute("data-preview")) {
    await preview(form);
    return;
  }
  if (!selectedInto(form)) return;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const buttons = form.querySelectorAll("button");
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const { response, answer } = await callApi(form);
    if (response.ok) {
      say((answer && answer.detail) || "Done.", false);
      if (form.dataset.next) { window.location.assign(form.dataset.next); }
      else { window.setTimeout(() => window.location.reload(), 600); }
    } else {
      const detail = answer && answer.detail ? answer.detail : "HTTP " + response.status;
      say("Refused: " + detail, true);
      buttons.forEach((button) => { button.disabled = false; });
    }
  } catch (error) {
    say("The request failed: " + error, true);
    buttons.forEach((button) => { button.disabled = false; });
  }
});

async function preview(form) {
  const output = document.getElementById(form.dataset.preview);
  try {
    const { response, answer } = await callApi(form, { dry_run: true });
    const detail = answer && answer.detail ? answer.detail : "HTTP " + response.status;
    if (output) {
      output.textContent = response.ok ? detail : "Refused: " + detail;
      output.classList.toggle("failed", !response.ok);
    }
  } catch (error) {
    if (output) output.textContent = "The request failed: " + error;
  }
}

function refreshEvery() {
  const holder = document.querySelector("[data-refresh]");
  if (!holder) return;
  const seconds = Number(holder.dataset.refresh);
  if (!(seconds > 0)) return;
  window.setInterval(() => {
    if (document.visibilityState === "visible" && !document.querySelector("input:focus, select:focus")) {
      window.location.reload();
    }
  }, seconds * 1000);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function followTail() {
  const table = document.querySelector("table[data-tail]");
  if (!table) return;
  const body = table.tBodies[0];
  let after = Number(table.dataset.after || "0");
  const query = table.dataset.tail;
  const empty = document.getElementById("tail-empty");
  async function poll() {
    try {
      const url = "/v1/events?limit=200&after_seq=" + after + (query ? "&" + query : "");
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (response.ok) {
        const answer = await response.json();
        answer.events.forEach((event) => {
          const row = document.createElement("tr");
          row.dataset.seq = event.seq;
          cell(row, event.seq);
          const when = document.createElement("td");
          const time = document.createElement("time");
          time.setAttribute("datetime", event.received_at);
          time.textContent = event.received_at.slice(0, 19).replace("T", " ") + " UTC";
          when.appendChild(time);
          row.appendChild(when);
          cell(row, event.source);
          cell(row, event.provider);
          cell(row, event.type);
          cell(row, event.status || "", "state-" + (event.status || ""));
          cell(row, event.provider_status || "");
          const link = document.createElement("td");
          if (event.message_id) {
            const anchor = document.createElement("a");
            anchor.href = "/console/messages/" + encodeURIComponent(event.provider) + "/" + encodeURIComponent(event.message_id);
            anchor.textContent = event.message_id;
            link.appendChild(anchor);
          }
          row.appendChild(link);
          body.insertBefore(row, body.firstChild);
          while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
        });
        if (answer.events.length && empty) empty.hidden = true;
        after = answer.next_after_seq;
        localTimes(body);
      }
    } catch (error) { /* the next round tries again */ }
    window.setTimeout(poll, 1500);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  refreshEvery();
  followTail();
  document.querySelectorAll("input[data-select-all]").forEach((box) => {
    box.addEventListener("change", () => {
      document.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]')
        .forEach((other) => { other.checked = box.checked; });
    });
  });
});
