// The console's actions: cancel, recover and relaunch on an execution's page, and the launch
// page. Forms are generated from an entity's interface (`shape` of each input, from
// GET /api/modules/{digest} or /api/executions/{id}/interface). The page checks what it can
// without the module (a number is a number, JSON parses, a list is an array); the server
// checks the types, with the CLI's messages, which the form shows. Loaded before console.js,
// whose helpers (el, put, api, enc, headers, badge, pretty) these functions use when called.
"use strict";

// A state-changing request: POST with the X-Sandflow header (the server refuses any other).
// `body` is JSON text (built by hand, so that i64s beyond 2^53 stay exact).
async function act(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: Object.assign({ "X-Sandflow": "1", "Content-Type": "application/json" }, headers),
    body: body || "",
  });
  const text = await res.text();
  let reply = null;
  try {
    reply = JSON.parse(text);
  } catch (e) {
    // Not JSON (the security check answers in text): show what was said.
  }
  if (!res.ok) throw new Error((reply && reply.error) || `${res.status} ${text || res.statusText}`);
  return reply || {};
}

// ---- execution page: buttons ------------------------------------------------------------

const RECOVERABLE = ["failed", "cancelled", "interrupted"];

// Called on every refresh of the execution's head; redraws only when the status changed, so
// an open relaunch form survives the live updates.
function drawActions(box, x) {
  if (box.dataset.status === x.status && box.dataset.id === x.id) return;
  box.dataset.status = x.status;
  box.dataset.id = x.id;
  const message = el("p", { id: "action-message", class: "note" });
  const formBox = el("div", { id: "relaunch-box" });
  const failed = (what, err) => {
    message.className = "error";
    message.textContent = `${what} failed: ${err.message}`;
  };
  const buttons = el("div", { class: "buttons" });
  if (x.status === "running") {
    const cancel = el("button", { id: "cancel", type: "button", text: "Cancel" });
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const r = await act(`/api/executions/${enc(x.id)}/cancel`);
        message.className = "note";
        message.replaceChildren(el("span", { id: "cancelling", class: "badge cancelled", text: "cancelling…" }),
          ` the run (process ${r.owner.pid} on ${r.owner.host}) stops at its next check`);
      } catch (err) {
        cancel.disabled = false;
        failed("cancel", err);
      }
    });
    buttons.append(cancel);
  }
  if (RECOVERABLE.includes(x.status)) {
    const recover = el("button", { id: "recover", type: "button", text: "Recover", title: "run again what did not succeed, reusing what did" });
    recover.addEventListener("click", async () => {
      recover.disabled = true;
      message.className = "note";
      message.textContent = "starting the recovery…";
      try {
        const r = await act(`/api/executions/${enc(x.id)}/recover`);
        location.hash = "#/x/" + enc(r.execution);
      } catch (err) {
        recover.disabled = false;
        failed("recover", err);
      }
    });
    buttons.append(recover);
  }
  if (x.status !== "running") {
    const relaunch = el("button", { id: "relaunch", type: "button", text: "Relaunch…", title: "run again with inputs edited in a form" });
    relaunch.addEventListener("click", () => {
      if (formBox.firstChild) formBox.replaceChildren();
      else relaunchForm(formBox, x);
    });
    buttons.append(relaunch);
  }
  const note = x.parent
    ? el("p", { class: "note", text: `a child execution: actions act on its whole run, top execution ${x.root}` })
    : null;
  put(box, buttons, note, message, formBox);
}

// The relaunch form: the inputs of the execution the relaunch acts on (the top one of a
// child execution's run), prefilled with their current values.
async function relaunchForm(box, x) {
  box.replaceChildren(el("p", { class: "note", text: "reading the interface…" }));
  try {
    let spec = await api(`/api/executions/${enc(x.id)}/interface`);
    if (spec.relaunches && spec.relaunches !== spec.id) spec = await api(`/api/executions/${enc(spec.relaunches)}/interface`);
    const target = spec.id;
    const values = {};
    for (const i of spec.entity.inputs) values[i.name] = i.value;
    const form = inputForm(spec.entity, values, {
      id: "relaunch-form",
      title: `Relaunch ${spec.entity.name} (${target})`,
      submit: "Relaunch",
      send: (inputs) => act(`/api/executions/${enc(target)}/relaunch`, `{"inputs":${inputs}}`),
      cancel: () => box.replaceChildren(),
    });
    box.replaceChildren(form);
  } catch (err) {
    box.replaceChildren(el("p", { id: "form-error", class: "error", text: "cannot read the interface: " + err.message }));
  }
}

// ---- forms --------------------------------------------------------------------------------

// A form for `entity`'s inputs, prefilled from `values` (by name; absent: the default). On
// submit, every field is checked; if all pass, `opts.send(inputsJsonText)` runs and its
// answer's `execution` is opened; any error is shown in the form and nothing is sent.
function inputForm(entity, values, opts) {
  const fields = entity.inputs.map((input) => field(input, input.name in values ? values[input.name] : undefined));
  const error = el("pre", { id: "form-error", class: "error", hidden: true });
  const submit = el("button", { type: "submit", id: "form-submit", text: opts.submit });
  const rows = fields.map((f) => f.row);
  const fixed = entity.launch_plan && entity.launch_plan.fixed.length
    ? el("fieldset", { class: "fixed" }, el("legend", { text: `fixed by the launch plan (runs ${entity.launch_plan.workflow})` }),
      ...entity.launch_plan.fixed.map((f) => el("div", { class: "field", "data-fixed": f.name },
        el("label", {}, f.name, " ", el("span", { class: "type", text: f.type || "" })),
        el("pre", { class: "json", text: pretty(f.value) }))))
    : null;
  const form = el("form", { id: opts.id, class: "input-form", noValidate: true },
    el("h3", { text: opts.title }),
    entity.inputs.length ? null : el("p", { class: "note", text: "this entity takes no inputs" }),
    ...rows, fixed,
    el("div", { class: "buttons" }, submit, opts.cancel ? el("button", { type: "button", text: "Close", onclick: opts.cancel }) : null),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const problems = [];
    const parts = [];
    for (const f of fields) {
      try {
        const text = f.read();
        if (text !== undefined) parts.push(JSON.stringify(f.name) + ":" + text);
      } catch (e) {
        problems.push(e.message);
      }
    }
    if (problems.length) {
      error.textContent = problems.join("\n");
      error.hidden = false;
      return;
    }
    error.hidden = true;
    submit.disabled = true;
    try {
      const r = await opts.send("{" + parts.join(",") + "}");
      location.hash = "#/x/" + enc(r.execution);
    } catch (err) {
      error.textContent = "refused: " + err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

const SCALARS = ["i64", "f64", "bool", "string", "enum"];

// One input's row: label, widget by the input's shape, and `read()`, which returns the
// value as JSON text, `undefined` to leave the input out (its default applies), or throws
// an Error that names the input and says what was expected.
function field(input, value) {
  const shape = input.shape || { kind: "json" };
  const hasDefault = input.default !== null && input.default !== undefined;
  const initial = value !== undefined ? value : hasDefault ? input.default : undefined;
  const name = input.name;
  const problem = (why) => new Error(`input \`${name}\` (${input.type}): ${why}`);
  const optional = shape.kind === "option";
  const inner = optional && SCALARS.includes(shape.of.kind) ? shape.of : optional ? null : shape;
  const w = inner ? scalar(inner, optional && initial === null ? undefined : initial, problem) : jsonArea(shape, initial, problem);
  w.node.dataset.input = name;
  w.node.name = name;
  const parts = [w.node];
  let none = null;
  if (optional && inner) {
    none = el("input", { type: "checkbox", class: "none", "data-none": name, checked: initial === null || initial === undefined });
    const sync = () => (w.node.disabled = none.checked);
    none.addEventListener("change", sync);
    sync();
    parts.push(el("label", { class: "none-label" }, none, " none"));
  }
  const read = () => {
    if (none && none.checked) return "null";
    const text = w.read();
    if (text !== undefined) return text;
    if (hasDefault) return undefined;
    if (optional) return "null";
    throw problem("a value is required");
  };
  const hint = hasDefault ? el("span", { class: "note", text: ` default ${JSON.stringify(input.default)}` }) : null;
  const row = el("div", { class: "field", "data-field": name },
    el("label", {}, name, " ", el("span", { class: "type", text: input.type }), hint),
    el("div", { class: "widget" }, ...parts));
  return { name, row, read };
}

// A field for a scalar: `read()` gives JSON text, or undefined when it is left empty.
function scalar(shape, initial, problem) {
  const has = initial !== undefined && initial !== null;
  switch (shape.kind) {
    case "bool": {
      const node = el("input", { type: "checkbox", checked: initial === true });
      return { node, read: () => (node.checked ? "true" : "false") };
    }
    case "enum": {
      const node = el("select", {}, ...shape.variants.map((v) => el("option", { value: v, text: v, selected: v === initial })));
      return { node, read: () => JSON.stringify(node.value) };
    }
    case "string": {
      const node = el("input", { type: "text", value: has ? String(initial) : "" });
      return { node, read: () => JSON.stringify(node.value) };
    }
    case "i64": {
      const node = el("input", { type: "number", step: "1", value: has ? String(initial) : "" });
      return {
        node,
        read: () => {
          if (node.validity.badInput) throw problem("expected a whole number");
          const v = node.value.trim();
          if (v === "") return undefined;
          if (!/^-?\d+$/.test(v)) throw problem(`expected a whole number, found ${v}`);
          const n = BigInt(v);
          if (n > 9223372036854775807n || n < -9223372036854775808n) throw problem(`${v} is outside the 64-bit range`);
          return n.toString();
        },
      };
    }
    case "f64": {
      // JSON has no NaN or infinities: they travel as these strings (a number field cannot
      // hold them, so such a value gets a text field).
      const special = ["NaN", "Infinity", "-Infinity"];
      const node = el("input", { type: typeof initial === "string" ? "text" : "number", step: "any", value: has ? String(initial) : "" });
      return {
        node,
        read: () => {
          if (node.validity.badInput) throw problem("expected a number");
          const v = node.value.trim();
          if (v === "") return undefined;
          if (special.includes(v)) return JSON.stringify(v);
          const n = Number(v);
          if (!Number.isFinite(n)) throw problem(`expected a number, found ${v}`);
          return JSON.stringify(n);
        },
      };
    }
  }
  return jsonArea(shape, initial, problem);
}

// What JSON value a shape needs at the top, for the page's own check (the server checks the
// rest, element by element).
function jsonKind(shape) {
  switch (shape.kind) {
    case "list":
      return ["array", "a JSON array", (v) => Array.isArray(v)];
    case "bytes":
      return ["array", "a JSON array of bytes (0..=255)", (v) => Array.isArray(v)];
    case "map":
      return ["object", `a JSON object (keys: ${shape.key === "i64" ? "whole numbers in decimal" : "strings"})`, (v) => v !== null && typeof v === "object" && !Array.isArray(v)];
    case "record":
      return ["object", `a JSON object with fields ${shape.fields.map((f) => f.name).join(", ")}`, (v) => v !== null && typeof v === "object" && !Array.isArray(v)];
    case "option":
      return ["any", "JSON (null for none)", () => true];
    default:
      return ["any", "JSON", () => true];
  }
}

function found(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return "a string";
  return typeof v === "number" ? "the number " + v : String(v);
}

// A JSON text area (lists, maps, records, bytes, optional compound values): `read()` gives
// the text as typed (so i64s beyond 2^53 stay exact) once it parses and has the right shape.
function jsonArea(shape, initial, problem) {
  const text = initial === undefined ? "" : pretty(initial);
  const node = el("textarea", { class: "json", spellcheck: false });
  // As tall as its text (4 to 16 lines), as it is typed or pasted.
  const fit = () => (node.rows = Math.min(16, Math.max(4, node.value.split("\n").length)));
  node.value = text;
  fit();
  node.addEventListener("input", fit);
  const [, expected, fits] = jsonKind(shape);
  return {
    node,
    read: () => {
      const t = node.value.trim();
      if (t === "") return undefined;
      let v;
      try {
        v = JSON.parse(t);
      } catch (e) {
        throw problem(`not valid JSON (${e.message}); expected ${expected}`);
      }
      if (!(shape.kind === "option" && v === null) && !fits(v)) throw problem(`expected ${expected}, found ${found(v)}`);
      return t;
    },
  };
}

// ---- launch page --------------------------------------------------------------------------

function count(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// #/launch: the modules in the store and their entities; #/launch?module=D&entity=E: the
// form of entity E of module D (defaults prefilled, a launch plan's fixed inputs shown).
async function launchPage(main, params) {
  const module = params.get("module") || "";
  const entity = params.get("entity") || "";
  const list = el("div", { id: "modules", class: "modules" });
  const formBox = el("div", { id: "launch-box" });
  main.append(el("h1", { text: "Launch" }), el("div", { class: "columns" }, el("div", { class: "col-list" }, list), el("div", { class: "col-main" }, formBox)));
  try {
    const body = await api("/api/modules");
    list.replaceChildren(body.modules.length ? "" : el("p", { class: "note", text: "no module in the store yet: `sandflow run` one first" }),
      ...body.modules.map((m) => el("section", { class: "module", "data-digest": m.digest },
      el("h3", { class: "digest", title: m.digest, text: m.digest.slice(0, 12) }),
      el("p", { class: "note", text: `${count(m.entities.length, "entity", "entities")} · ${count(m.executions, "execution", "executions")} · ${m.size} bytes` }),
      el("ul", { class: "entities" }, ...m.entities.map((e) => el("li", {},
        el("a", {
          href: `#/launch?module=${enc(m.digest)}&entity=${enc(e.name)}`,
          class: "entity" + (m.digest.startsWith(module) && module && e.name === entity ? " selected" : ""),
          "data-entity": e.name,
          text: e.name,
        }), " ", el("span", { class: "kind", text: e.kind })))))));
    say(body.modules.length ? "pick an entity to launch" : "no modules");
  } catch (err) {
    say("cannot read the modules: " + err.message, true);
  }
  if (!module || !entity) return;
  formBox.replaceChildren(el("p", { class: "note", text: "reading the interface…" }));
  try {
    const m = await api(`/api/modules/${enc(module)}`);
    const e = m.entities.find((x) => x.name === entity);
    if (!e) throw new Error(`module ${m.digest} has no entity ${entity}`);
    formBox.replaceChildren(inputForm(e, {}, {
      id: "launch-form",
      title: `${e.kind} ${e.name}` + (e.output ? ` → ${e.output}` : ""),
      submit: "Launch",
      send: (inputs) => act("/api/launch", `{"module":${JSON.stringify(m.digest)},"entity":${JSON.stringify(e.name)},"inputs":${inputs}}`),
    }));
    say(`launch ${e.name} of module ${m.digest.slice(0, 12)}`);
  } catch (err) {
    formBox.replaceChildren(el("p", { id: "form-error", class: "error", text: "cannot read the entity: " + err.message }));
  }
}
