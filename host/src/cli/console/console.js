// The console's page: lists executions through the JSON API and refreshes on the server's
// events. Every value goes into the page as text (textContent), never as markup, so a
// task that prints `<script>` runs nothing.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/api/executions?limit=100", { headers });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    const tbody = document.getElementById("executions");
    tbody.replaceChildren();
    for (const e of body.executions) {
      const tr = document.createElement("tr");
      const t = e.tasks;
      cell(tr, e.id);
      cell(tr, e.status, e.status);
      cell(tr, e.entity);
      cell(tr, e.started);
      cell(tr, e.duration_ms);
      cell(tr, `${t.succeeded}/${t.running}/${t.failed}/${t.cached}`);
      cell(tr, e.parent);
      tbody.appendChild(tr);
    }
    status.textContent = `${body.executions.length} executions`;
  } catch (err) {
    status.textContent = "cannot read the executions: " + err.message;
  }
}

refresh();
const events = new EventSource("/api/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
events.addEventListener("executions", refresh);
