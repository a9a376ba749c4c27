// Roost dashboard: live updates over SSE from the gateway, and a run's DAG drawn with
// dagre (layout) as SVG. Pages work without this script; it only keeps them current.
// Everything it writes into the page goes through textContent or comes from this
// dashboard's own (autoescaped) templates.
"use strict";

(() => {
  const body = document.body;
  const gateway = body.dataset.gateway;
  const token = body.dataset.streamToken;
  const types = (body.dataset.eventTypes || "").split(",").filter(Boolean);
  const liveState = document.getElementById("live-state");
  const SVG = "http://www.w3.org/2000/svg";

  function setStatus(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = `status status-${status.toLowerCase()}`;
  }

  function setLive(text) {
    if (liveState) liveState.textContent = text;
  }

  // One EventSource to the gateway. The browser reconnects by itself with Last-Event-ID,
  // and the gateway fills the gap from its durable log. But if the gateway answers a
  // reconnection with an error (its stream token expired while the page stayed open, and
  // then the gateway restarted), the browser gives up: this gets a fresh token from the
  // dashboard and opens the stream again after the last event seen, backing off to 30 s.
  // Returns { close() }.
  function stream(path, wanted, onEvent, after) {
    if (!gateway || !token) return null;
    let current = token;
    let lastId = after;
    let source = null;
    let closed = false;
    let backoff = 1000;

    function open() {
      const params = new URLSearchParams({ token: current });
      if (wanted) params.set("types", wanted);
      if (lastId) params.set("after", String(lastId));
      source = new EventSource(`${gateway}${path}?${params}`);
      for (const type of [...types, "span"]) {
        source.addEventListener(type, (e) => {
          if (e.lastEventId) lastId = e.lastEventId;
          onEvent(JSON.parse(e.data));
        });
      }
      source.onopen = () => { backoff = 1000; setLive("Live"); };
      source.onerror = () => {
        if (closed) return;
        setLive("Reconnecting…");
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(renew, backoff);
          backoff = Math.min(backoff * 2, 30000);
        }
      };
    }

    async function renew() {
      if (closed) return;
      try {
        const resp = await fetch("/stream-token", {
          method: "POST", credentials: "same-origin", redirect: "manual",
          headers: { "X-CSRF-Token": body.dataset.csrf || "" },
        });
        if (resp.type === "opaqueredirect" || resp.status === 401 || resp.status === 403) {
          setLive("Live updates ended: signed out (reload to sign in again)");
          return;
        }
        if (resp.ok) current = (await resp.json()).token;
      } catch (err) {
        // The dashboard itself is unreachable for now: try the stream again anyway.
      }
      if (!closed) open();
    }

    open();
    return { close() { closed = true; source.close(); } };
  }

  const RUN_STATUS = {
    "run.queued": "QUEUED", "run.started": "RUNNING", "run.succeeded": "SUCCEEDED",
    "run.failed": "FAILED", "run.cancelled": "CANCELLED",
  };
  const TASK_STATUS = {
    "task.queued": "QUEUED", "task.redispatched": "QUEUED", "task.started": "RUNNING", "task.retrying": "QUEUED",
    "task.waiting": "WAITING", "task.succeeded": "SUCCEEDED", "task.failed": "FAILED",
    "task.timed_out": "TIMED_OUT", "task.cancelled": "CANCELLED",
  };

  const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  const FINAL_TASK = new Set([...FINAL, "TIMED_OUT"]);

  // As roost_dashboard.formatting.when does: to the second, in UTC.
  function formatWhen(iso) {
    return iso ? `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")}Z` : "";
  }

  // As roost_dashboard.formatting.format_seconds does for the rendered rows.
  function formatDuration(seconds) {
    const s = Math.max(0, seconds);
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 60) return `${s.toFixed(1)} s`;
    const whole = Math.floor(s);
    const pad = (n) => String(n).padStart(2, "0");
    if (whole < 3600) return `${Math.floor(whole / 60)} m ${pad(whole % 60)} s`;
    return `${Math.floor(whole / 3600)} h ${pad(Math.floor((whole % 3600) / 60))} m`;
  }

  // As roost_dashboard.formatting.wait does: what a WAITING task waits for, and until
  // when ("sleep until 2026-12-07 06:10:03Z", "event ci:done", "children (3 runs)");
  // empty when it waits for nothing.
  function waitText(waiting) {
    if (!waiting) return "";
    const reason = waiting.reason || "wait";
    let what = waiting.key ? `${reason} ${waiting.key}` : reason;
    if (reason === "children" && Array.isArray(waiting.runs)) {
      what += ` (${waiting.runs.length} run${waiting.runs.length === 1 ? "" : "s"})`;
    }
    if (reason === "any" && waiting.events && typeof waiting.events === "object") {
      what += ` of ${Object.keys(waiting.events).sort().join(", ")}`;
    }
    if (typeof waiting.until !== "number") return what;
    return `${what} until ${formatWhen(new Date(waiting.until * 1000).toISOString())}`;
  }

  // As roost_dashboard.formatting.compact does: an approval's details as compact JSON;
  // longer than COMPACT characters, cut, with the whole, indented, on request.
  const COMPACT = 120;
  function fillDetails(span, value) {
    if (value === null || value === undefined) { span.textContent = "—"; return; }
    const text = JSON.stringify(value);
    const code = document.createElement("code");
    if (text.length <= COMPACT) {
      code.textContent = text;
      span.replaceChildren(code);
      return;
    }
    code.textContent = `${text.slice(0, COMPACT)}…`;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(value, null, 2);
    summary.appendChild(code);
    details.append(summary, pre);
    span.replaceChildren(details);
  }

  // As roost_dashboard.formatting.outcome does: how an approval was decided.
  function outcomeText(data, at) {
    if (data.status === "EXPIRED") return `Expired at ${formatWhen(at)}: no decision in time`;
    const verdict = data.approved ? "Approved" : "Rejected";
    return `${verdict} by ${data.by} at ${formatWhen(at)}${data.reason ? `: ${data.reason}` : ""}`;
  }

  // A decision as a line of the run's log (as roost_dashboard.approvals.decision_lines).
  function decisionLine(task, data) {
    if (data.status === "EXPIRED") return `${task}: approval expired with no decision`;
    const verdict = data.approved ? "approved" : "rejected";
    return `${task} ${verdict} by ${data.by}${data.reason ? `: ${data.reason}` : ""}`;
  }

  // A task's accessible name on the graph: its status, and what it waits for if it waits.
  function nodeLabel(task) {
    const wait = task.status === "WAITING" ? waitText(task.waiting) : "";
    return `task ${task.name}: ${task.status}${wait ? `, ${wait}` : ""}`;
  }

  // -- the runs table ------------------------------------------------------------------
  function liveRuns(table) {
    const tbody = table.tBodies[0];
    const workflow = table.dataset.workflow;
    const inserting = table.hasAttribute("data-insert");
    stream("/api/v1/events", "run.*", async (event) => {
      const status = RUN_STATUS[event.type];
      if (!status) return;
      const row = tbody.querySelector(`tr[data-run="${CSS.escape(event.run_id)}"]`);
      if (row) {
        setStatus(row.querySelector(".status"), status);
        const started = row.querySelector("[data-field=started]");
        if (event.type === "run.started" && started && !started.dataset.at) {
          started.dataset.at = new Date(event.at * 1000).toISOString();
          started.textContent = formatWhen(started.dataset.at);
        } else if (FINAL.has(status) && started && started.dataset.at) {
          row.querySelector("[data-field=duration]").textContent =
            formatDuration(event.at - Date.parse(started.dataset.at) / 1000);
        } else if (FINAL.has(status)) {
          // Its start came before its row was on the page: the server's row has it.
          const resp = await fetch(`/runs/${encodeURIComponent(event.run_id)}/row`,
                                   { credentials: "same-origin" });
          if (resp.ok) row.outerHTML = await resp.text();
        }
        return;
      }
      if (!inserting || event.type !== "run.queued") return;
      if (workflow && event.workflow !== workflow) return;
      const resp = await fetch(`/runs/${encodeURIComponent(event.run_id)}/row`,
                               { credentials: "same-origin" });
      if (!resp.ok || tbody.querySelector(`tr[data-run="${CSS.escape(event.run_id)}"]`)) return;
      const empty = tbody.querySelector("td[colspan]");
      if (empty) empty.parentElement.remove();
      tbody.insertAdjacentHTML("afterbegin", await resp.text());
    });
  }

  // -- a run: its DAG, statuses, details and logs ------------------------------------
  function drawDag(svg, run, onSelect) {
    const graph = new dagre.graphlib.Graph();
    // dagre's default ranker (network simplex) draws the most compact graph but grows
    // fast: 2 s for 500 tasks and 950 edges on a 2-core machine, against 0.4 s for the
    // tight-tree ranker, whose layers are as good for the layered DAGs big runs have.
    const ranker = run.tasks.length > 150 ? "tight-tree" : "network-simplex";
    graph.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 8, marginy: 8, ranker });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const task of run.tasks) {
      graph.setNode(task.name, { width: Math.max(120, 9 * task.name.length + 28), height: 40 });
    }
    for (const task of run.tasks) {
      for (const parent of task.parents) graph.setEdge(parent, task.name);
    }
    dagre.layout(graph);
    const { width, height } = graph.graph();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    for (const edge of graph.edges()) {
      const points = graph.edge(edge).points.map((p) => `${p.x},${p.y}`).join(" ");
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", points);
      line.setAttribute("class", "edge");
      svg.appendChild(line);
    }
    const nodes = new Map();
    for (const task of run.tasks) {
      const box = graph.node(task.name);
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", `node status-${task.status.toLowerCase()}`);
      g.setAttribute("data-node", task.name);
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.setAttribute("aria-label", nodeLabel(task));
      g.setAttribute("transform", `translate(${box.x - box.width / 2},${box.y - box.height / 2})`);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("width", String(box.width));
      rect.setAttribute("height", String(box.height));
      rect.setAttribute("rx", "6");
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", String(box.width / 2));
      label.setAttribute("y", "25");
      label.setAttribute("text-anchor", "middle");
      label.textContent = task.name;
      g.append(rect, label);
      g.addEventListener("click", () => onSelect(task.name));
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(task.name); }
      });
      svg.appendChild(g);
      nodes.set(task.name, g);
    }
    return nodes;
  }

  // User Timing marks (ms from navigation start, in performance.getEntriesByName):
  // the graph in the DOM, and the frame after it was painted. The benchmark reads them;
  // so can any real-user monitoring.
  function markDrawn() {
    performance.mark("roost:dag-drawn");
    requestAnimationFrame(() => setTimeout(() => performance.mark("roost:dag-painted"), 0));
  }

  // -- a run's timeline: its spans (tree order) or, without spans, its attempts -------
  function treeOrder(spans) {
    const ids = new Set(spans.map((s) => s.span_id));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_span_id && ids.has(s.parent_span_id)) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      } else {
        roots.push(s);
      }
    }
    const byStart = (a, b) => a.start - b.start;
    const out = [];
    const seen = new Set();
    const walk = (s, depth) => {
      if (seen.has(s.span_id)) return;
      seen.add(s.span_id);
      out.push({ label: s.name, start: s.start, end: s.end, depth,
                 error: s.status === "error", detail: s.service });
      for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
    };
    roots.sort(byStart).forEach((r) => walk(r, 0));
    return out;
  }

  function attemptItems(run) {
    const items = [];
    const secs = (iso) => (iso ? Date.parse(iso) / 1000 : null);
    const now = Date.now() / 1000;
    for (const task of run.tasks) {
      for (const a of task.attempts || []) {
        if (a.started_at && a.attempt !== task.attempt) {
          items.push({ label: `${task.name} #${a.attempt}`, start: secs(a.started_at),
                       end: secs(a.finished_at) || now, depth: 0,
                       // An attempt that ended to wait did not fail.
                       error: !["SUCCEEDED", "WAITING"].includes(a.status),
                       detail: a.status });
        }
      }
      if (task.started_at) {
        items.push({ label: `${task.name} #${task.attempt}`, start: secs(task.started_at),
                     end: secs(task.finished_at) || now, depth: 0,
                     error: ["FAILED", "TIMED_OUT"].includes(task.status), detail: task.status });
      }
    }
    return items.sort((a, b) => a.start - b.start);
  }

  // The timeline draws only the rows in and near its frame's view (the frame scrolls):
  // a 500-task run has over a thousand spans, and drawing them all on each live update
  // held the main thread for hundreds of milliseconds at a time. Scrolling draws the
  // rows it reveals. Rows are ordered once per update; drawing a view is ~100 rows.
  const ROW = 20;
  const OVERSCAN = 40;  // rows drawn beyond each edge of the view
  const LABEL_WIDTH = 260;
  const BAR_WIDTH = 620;
  const timelines = new WeakMap();

  function drawTimeline(svg, items, caption, source) {
    caption.textContent = source;
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const item of items) {
      t0 = Math.min(t0, item.start);
      t1 = Math.max(t1, item.end);
    }
    const width = LABEL_WIDTH + BAR_WIDTH + 90;
    const height = items.length * ROW + 8;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    // The frame's scroll position and height are kept from its own events: reading them
    // while drawing would force a layout of the whole page on every live update.
    let view = timelines.get(svg);
    if (!view) {
      const frame = svg.parentElement;
      view = { top: frame.scrollTop, height: frame.clientHeight || 600 };
      let scheduled = false;
      frame.addEventListener("scroll", () => {
        view.top = frame.scrollTop;
        if (scheduled) return;
        scheduled = true;
        requestAnimationFrame(() => { scheduled = false; drawRows(svg, view); });
      }, { passive: true });
      new ResizeObserver((entries) => {
        view.height = entries[entries.length - 1].contentRect.height || view.height;
        drawRows(svg, view);
      }).observe(frame);
      timelines.set(svg, view);
    }
    Object.assign(view, { items, t0, extent: Math.max(t1 - t0, 0.001) });
    drawRows(svg, view);
  }

  function drawRows(svg, view) {
    const { items, t0, extent } = view;
    const first = Math.max(0, Math.floor(view.top / ROW) - OVERSCAN);
    const last = Math.min(items.length, Math.ceil((view.top + view.height) / ROW) + OVERSCAN);
    const drawn = [];
    for (let index = first; index < last; index++) {
      const item = items[index];
      const y = index * ROW + 4;
      const length = Math.max(2, ((item.end - item.start) / extent) * BAR_WIDTH);
      const x = LABEL_WIDTH + ((item.start - t0) / extent) * BAR_WIDTH;
      const ms = ((item.end - item.start) * 1000).toFixed(1);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", String(4 + 12 * item.depth));
      label.setAttribute("y", String(y + 13));
      label.setAttribute("class", "tl-label");
      label.textContent = item.label;
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", String(x));
      bar.setAttribute("y", String(y + 3));
      bar.setAttribute("width", String(length));
      bar.setAttribute("height", "12");
      bar.setAttribute("class", item.error ? "tl-bar tl-error" : "tl-bar");
      bar.setAttribute("data-item", item.label);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${item.label}: ${ms} ms (${item.detail})`;
      bar.appendChild(title);
      const duration = document.createElementNS(SVG, "text");
      duration.setAttribute("x", String(Math.min(x + length + 4, LABEL_WIDTH + BAR_WIDTH + 4)));
      duration.setAttribute("y", String(y + 13));
      duration.setAttribute("class", "tl-duration");
      duration.textContent = `${ms} ms`;
      drawn.push(label, bar, duration);
    }
    svg.replaceChildren(...drawn);
  }

  // -- the activity page: charts with uPlot, refreshed every 15 s ----------------------
  function activityCharts(initial) {
    const minutes = new URLSearchParams(location.search).get("minutes") || "60";
    const width = () => Math.min(1100, document.querySelector("main").clientWidth - 40);
    const queueSeries = [[], []];  // sampled here: time, total ready
    let charts = [];

    function series(body) {
      const pts = body.points;
      const x = pts.map((p) => p.minute);
      return {
        runs: [x, pts.map((p) => p.succeeded), pts.map((p) => p.failed),
               pts.map((p) => p.cancelled)],
        durations: [x, pts.map((p) => p.task_p50), pts.map((p) => p.task_p95)],
      };
    }

    function draw(body) {
      const ready = body.ready || {};
      queueSeries[0].push(Math.floor(Date.now() / 1000));
      queueSeries[1].push(Object.values(ready).reduce((a, b) => a + b, 0));
      const tbody = document.getElementById("ready-now");
      tbody.replaceChildren();
      for (const [name, n] of Object.entries(ready)) {
        const tr = document.createElement("tr");
        tr.dataset.queue = name;
        const a = document.createElement("td"); a.textContent = name;
        const b = document.createElement("td"); b.textContent = String(n);
        tr.append(a, b);
        tbody.appendChild(tr);
      }
      const data = series(body);
      charts.forEach((c) => c.destroy());
      const common = { width: width(), height: 220 };
      charts = [
        new uPlot({ ...common, series: [{}, { label: "succeeded", stroke: "#176b2c" },
                                        { label: "failed", stroke: "#a31515" },
                                        { label: "cancelled", stroke: "#6b3fa0" }] },
                  data.runs, document.getElementById("chart-runs")),
        new uPlot({ ...common, series: [{}, { label: "p50", stroke: "#1f5fbf" },
                                        { label: "p95", stroke: "#b35c00" }] },
                  data.durations, document.getElementById("chart-durations")),
        new uPlot({
          ...common,
          // The same window as the other charts, though samples start when the page opened.
          scales: { x: { time: true, range: () => [data.runs[0][0], Date.now() / 1000] } },
          series: [{}, { label: "ready", stroke: "#1d2330" }],
        }, queueSeries, document.getElementById("chart-queue")),
      ];
    }

    draw(initial);
    setInterval(async () => {
      const resp = await fetch(`/activity/data?minutes=${encodeURIComponent(minutes)}`,
                               { credentials: "same-origin" });
      if (resp.ok) draw(await resp.json());
    }, 15000);
  }

  // -- a run's children (child runs, issue #18) ----------------------------------------
  // A child's status changes are events of the child's own run, which this page does not
  // follow: the page reads its run's children from the dashboard (/runs/{id}/children,
  // roost_dashboard.children) soon after its own run has news, and every few seconds
  // while its run or a child is still going (a run going on may yet trigger more): every
  // CHILD_POLL ms for CHILD_QUICK reads after news or a change, then backing off to
  // CHILD_POLL_MAX while nothing changes; not while the page is hidden, and not at all
  // once the run and its children have all ended.
  const CHILD_POLL = 2000;
  const CHILD_POLL_MAX = 10000;
  const CHILD_QUICK = 3;
  function liveChildren(runId, initial) {
    const section = document.getElementById("children");
    const rows = document.getElementById("child-rows");
    const template = document.getElementById("child-template");
    const count = document.getElementById("children-count");
    if (!section || !rows || !template || !count) return { nudge() {} };
    let state = initial;
    let timer = null;
    let delay = CHILD_POLL;
    let quick = CHILD_QUICK;
    let busy = false;
    let again = false;
    let missed = false;
    let stopped = false;

    function addRow(child) {
      const row = template.content.firstElementChild.cloneNode(true);
      row.dataset.child = child.id;
      const set = (field, text) => { row.querySelector(`[data-field=${field}]`).textContent = text; };
      row.querySelector("[data-field=link]").href = `/runs/${encodeURIComponent(child.id)}`;
      set("id", child.id.slice(0, 8));
      set("workflow", child.workflow);
      set("task", child.task);
      set("key", child.key);
      const created = row.querySelector("[data-field=created]");
      created.setAttribute("datetime", child.created_at || "");
      created.textContent = formatWhen(child.created_at);
      rows.appendChild(row);  // children come oldest first: a new one is the newest
      return row;
    }

    // As run.html says it: how many, and a link to them all when not all are listed.
    function showCount(data) {
      const shown = data.children.length;
      if (data.total > shown) {
        const all = document.createElement("a");
        all.href = `/runs?${new URLSearchParams({ parent: runId })}`;
        all.textContent = "all of them";
        count.replaceChildren(`${data.total} child runs, the first ${shown} shown: `, all);
      } else {
        count.textContent = `${data.total} child run${data.total === 1 ? "" : "s"}`;
      }
      section.hidden = data.total === 0;
    }

    // The children as read; whether anything changed.
    function apply(data) {
      let changed = data.total !== state.total;
      for (const child of data.children) {
        let row = rows.querySelector(`tr[data-child="${CSS.escape(child.id)}"]`);
        if (!row) { row = addRow(child); changed = true; }
        const badge = row.querySelector(".status");
        if (badge.textContent !== child.status) { setStatus(badge, child.status); changed = true; }
      }
      showCount(data);
      state = data;
      return changed;
    }

    function going() { return !stopped && (!FINAL.has(state.status) || state.active > 0); }

    function schedule(ms) {
      clearTimeout(timer);
      timer = going() ? setTimeout(refresh, ms) : null;
    }

    async function refresh() {
      timer = null;
      if (document.hidden) { missed = true; return; }  // read again once it is shown
      if (busy) { again = true; return; }
      busy = true;
      let changed = false;
      try {
        const resp = await fetch(`/runs/${encodeURIComponent(runId)}/children`,
                                 { credentials: "same-origin", redirect: "manual" });
        if (resp.type === "opaqueredirect" || resp.status === 401 || resp.status === 403) {
          stopped = true;  // signed out: the page says so once its stream ends
        } else if (resp.ok) {
          changed = apply(await resp.json());
        }
      } catch (err) {
        // The dashboard is unreachable for now: try again later.
      } finally {
        busy = false;
      }
      if (changed) quick = CHILD_QUICK;
      if (quick > 0) { quick -= 1; delay = CHILD_POLL; } else delay = Math.min(delay * 2, CHILD_POLL_MAX);
      if (again) { again = false; schedule(0); } else schedule(delay);
    }

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && missed) { missed = false; schedule(0); }
    });
    schedule(delay);
    return {
      // The run has news (a task started, waits, ended; the run ended): read soon, and
      // often again for a while, whatever the last reads said.
      nudge() {
        delay = CHILD_POLL;
        quick = CHILD_QUICK;
        clearTimeout(timer);
        if (!stopped) timer = setTimeout(refresh, 300);
      },
    };
  }

  function liveRun(run, children) {
    const tasks = new Map(run.tasks.map((t) => [t.name, t]));
    const svg = document.getElementById("dag");
    const logs = document.getElementById("logs");
    let selected = null;

    function showDetail(name) {
      selected = name;
      const task = tasks.get(name);
      const panel = document.getElementById("task-detail");
      document.getElementById("task-detail-title").textContent = `Task ${name}`;
      const facts = document.getElementById("task-detail-facts");
      facts.replaceChildren();
      const json = (value) => (value === null || value === undefined
        ? "—" : JSON.stringify(value));
      const rows = [
        ["Status", task.status],
        ...(task.status === "WAITING" ? [["Waiting", waitText(task.waiting) || "—"]] : []),
        ...(task.status === "WAITING" && task.waiting && task.waiting.question
          ? [["Question", task.waiting.question]] : []),
        ["Attempt", String(task.attempt)],
        ["Worker", task.worker_id || "—"],
        ...(task.placement ? [["Placement", placementText(task.placement)]] : []),
        // Every task gets the run's input; its parents' outputs are on their panels.
        ["Input", json(run.input)],
        ["Output", json(task.output)],
      ];
      for (const [term, value] of rows) {
        const dt = document.createElement("dt"); dt.textContent = term;
        const dd = document.createElement("dd"); dd.textContent = value;
        dd.dataset.fact = term.toLowerCase();
        facts.append(dt, dd);
      }
      showAttempts(task);
      const error = document.getElementById("task-detail-error");
      const err = task.error;
      error.hidden = !err;
      error.textContent = err ? `${err.type}: ${err.message}\n\n${err.traceback || ""}` : "";
      panel.hidden = false;
      for (const li of logs.children) li.hidden = li.dataset.task !== name;
    }

    // An attempt's placement (issue #21): why it went where it did, or why it waits.
    function placementText(p) {
      if (!p) return "—";
      return p.waits || p.error || p.reason || "—";
    }

    // The task's attempts, one row each: when it waited and ran, where, and how it ended.
    function showAttempts(task) {
      const tbody = document.getElementById("task-detail-attempts").tBodies[0];
      const secs = (a, b) => (a && b ? `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(2)} s` : "—");
      tbody.replaceChildren();
      for (const a of task.attempts || []) {
        const tr = document.createElement("tr");
        tr.dataset.attempt = String(a.attempt);
        const cells = [
          `#${a.attempt}`, a.status, a.worker_id || "—", placementText(a.placement),
          formatWhen(a.started_at) || "—",
          secs(a.queued_at, a.started_at), secs(a.started_at, a.finished_at),
          a.error ? `${a.error.type}: ${a.error.message}` : "",
        ];
        for (const text of cells) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        tbody.appendChild(tr);
      }
    }

    const nodes = drawDag(svg, run, showDetail);
    markDrawn();

    const spanData = document.getElementById("span-data");
    const spans = new Map(
      (spanData ? JSON.parse(spanData.textContent) : []).map((s) => [s.span_id, s]));
    const timeline = document.getElementById("timeline");
    const caption = document.getElementById("timeline-source");
    // A redraw costs more as the run grows (a row per span: a 500-task run has over a
    // thousand). Live events come faster than that, so redraws are spaced by four times
    // the last one's cost: however big the run, the timeline keeps at most a fifth of
    // the main thread, and the graph's own updates stay instant.
    let pending = false;
    let lastEnd = 0;
    let lastCost = 0;
    function redrawTimeline() {
      if (pending) return;
      pending = true;
      const wait = Math.max(0, lastEnd + 4 * lastCost - performance.now());
      setTimeout(() => requestAnimationFrame(() => {
        pending = false;
        const began = performance.now();
        if (spans.size) {
          drawTimeline(timeline, treeOrder([...spans.values()]), caption,
                       `${spans.size} spans from Roost's span store`);
        } else {
          drawTimeline(timeline, attemptItems(run), caption,
                       "Task attempts (no spans stored for this run)");
        }
        lastEnd = performance.now();
        lastCost = lastEnd - began;
      }), wait);
    }
    redrawTimeline();

    const rows = new Map(
      [...document.querySelectorAll("tr[data-task]")].map((tr) => [tr.dataset.task, tr]));
    function taskChanged(name, status) {
      const node = nodes.get(name);
      const task = tasks.get(name);
      if (node) {
        node.setAttribute("class", `node status-${status.toLowerCase()}`);
        node.setAttribute("aria-label", nodeLabel(task));
      }
      const row = rows.get(name);
      if (row) {
        setStatus(row.querySelector(".status"), status);
        row.querySelector("[data-field=attempt]").textContent = String(task.attempt);
        const wait = row.querySelector("[data-field=waiting]");
        if (wait) {
          wait.textContent = status === "WAITING" ? waitText(task.waiting) : "";
          wait.hidden = status !== "WAITING";
        }
      }
    }

    // Its approvals (the section above the graph): a task that asks while the page is
    // open gets its gate, a copy of the page's own <template> (approval_macros.html
    // gate); a decision closes it with how it was decided, as does a task that stops
    // waiting without one (its timeout passed, or it ended).
    const approvals = document.getElementById("approvals");
    const gates = document.getElementById("gates");
    const gateTemplate = document.getElementById("gate-template");
    function gateOf(id) {
      return gates ? gates.querySelector(`li[data-approval="${CSS.escape(id)}"]`) : null;
    }
    function showGate(task, waiting, at) {
      if (!gates || !gateTemplate || !waiting || waiting.reason !== "approval") return;
      const id = waiting.approval_id;
      if (!id) return;
      const shown = gateOf(id);
      if (shown && shown.dataset.status === "PENDING") return;
      const li = gateTemplate.content.firstElementChild.cloneNode(true);
      li.dataset.approval = id;
      li.dataset.gateTask = task.name;
      const set = (field, text) => {
        for (const el of li.querySelectorAll(`[data-field=${field}]`)) el.textContent = text;
      };
      set("task", task.name);
      set("question", waiting.question || "");
      set("asked", formatWhen(at));
      set("expires", typeof waiting.until === "number"
        ? formatWhen(new Date(waiting.until * 1000).toISOString()) : "never");
      fillDetails(li.querySelector("[data-field=details]"), waiting.details);
      const form = li.querySelector("form.decide");
      form.action = `/approvals/${encodeURIComponent(id)}/approve`;
      form.querySelector("[data-action=reject]").formAction =
        `/approvals/${encodeURIComponent(id)}/reject`;
      if (shown) shown.replaceWith(li); else gates.prepend(li);
      approvals.hidden = false;
    }
    function closeGate(li, status, text) {
      li.dataset.status = status;
      const form = li.querySelector("form.decide");
      if (form) form.remove();
      const outcome = li.querySelector("[data-field=outcome]");
      outcome.textContent = text;
      outcome.className = `outcome status-${status.toLowerCase()}`;
      outcome.hidden = false;
    }
    function gatesLeft(task) {
      if (!gates || task.status === "WAITING") return;
      const open = gates.querySelectorAll(
        `li[data-gate-task="${CSS.escape(task.name)}"][data-status="PENDING"]`);
      for (const li of open) {
        if (FINAL_TASK.has(task.status)) {
          closeGate(li, "CANCELLED", "Cancelled: its task ended before a decision");
        } else {
          closeGate(li, "EXPIRED", "Expired: no decision before its timeout");
        }
      }
    }

    // Once the run has ended its stream stops, but its last spans are stored a moment
    // later: read the stored trace again, twice, to complete the timeline.
    function catchUpSpans() {
      for (const delay of [1500, 4000]) {
        setTimeout(async () => {
          const resp = await fetch(`/runs/${encodeURIComponent(run.id)}/spans`,
                                   { credentials: "same-origin" });
          if (!resp.ok) return;
          for (const span of await resp.json()) spans.set(span.span_id, span);
          redrawTimeline();
        }, delay);
      }
    }
    const path = `/api/v1/runs/${encodeURIComponent(run.id)}/events`;
    const source = stream(path, "run.*,task.*,span", (event) => {
      if (event.span_id) {  // a span of this run, as it was stored
        spans.set(event.span_id, event);
        redrawTimeline();
        return;
      }
      // A task that starts may trigger runs, one that waits may wait for them.
      if (RUN_STATUS[event.type] || TASK_STATUS[event.type]) children.nudge();
      if (RUN_STATUS[event.type]) {
        const status = RUN_STATUS[event.type];
        setStatus(document.getElementById("run-status"), status);
        if (FINAL.has(status) && source) {
          source.close();  // the run's stream has ended: nothing more will come
          if (liveState) liveState.textContent = `Run ${status.toLowerCase()}: up to date`;
          catchUpSpans();
        }
        return;
      }
      const task = tasks.get(event.task);
      if (!task) return;
      if (TASK_STATUS[event.type]) {
        task.status = TASK_STATUS[event.type];
        if (event.attempt) task.attempt = event.attempt;
        const data = event.data || {};
        // A wait lasts until the task's next status. While it waits, the task's attempt is
        // the one it will resume as, as GET /runs/{id} shows it (docs/durable.md).
        task.waiting = event.type === "task.waiting" ? data : null;
        if (event.type === "task.waiting" && event.attempt) task.attempt = event.attempt + 1;
        if (event.type === "task.succeeded") task.output = data.output;
        if (event.type === "task.failed" || event.type === "task.timed_out") task.error = data.error || data;
        const at = new Date(event.at * 1000).toISOString();
        if (event.type === "task.started") task.started_at = at;
        if (["task.succeeded", "task.failed", "task.timed_out"].includes(event.type)) {
          task.finished_at = at;
        }
        // The ended attempt's times are its own (the attempts table has them), as GET shows.
        if (event.type === "task.waiting") task.started_at = task.finished_at = null;
        if (event.attempt && event.type !== "task.retrying") {
          // The attempt this event is about, as GET /runs/{id} would list it.
          task.attempts = task.attempts || [];
          let attempt = task.attempts.find((a) => a.attempt === event.attempt);
          if (!attempt) {
            attempt = { attempt: event.attempt, queued_at: at };
            task.attempts.push(attempt);
          }
          attempt.status = task.status;
          // Where the engine placed it, or why it waits for a worker (docs/placement.md).
          if (event.type === "task.queued" && event.data) {
            attempt.placement = task.placement = event.data;
          }
          if (event.type === "task.started") {
            attempt.started_at = at;
            attempt.worker_id = data.worker_id || attempt.worker_id;
            if (data.queued_at) attempt.queued_at = new Date(data.queued_at * 1000).toISOString();
          }
          if (task.finished_at === at || event.type === "task.waiting") attempt.finished_at = at;
          if (task.error && event.type !== "task.succeeded") attempt.error = task.error;
        }
        taskChanged(event.task, task.status);
        if (event.type === "task.waiting") showGate(task, data, at); else gatesLeft(task);
        redrawTimeline();
        if (selected === event.task) showDetail(event.task);
      } else if (event.type === "task.approval") {
        // A person decided: the gate says how, and so does the log (the task goes on
        // with its next task.queued).
        const data = event.data || {};
        const li = gateOf(data.approval_id || "");
        const at = new Date(event.at * 1000).toISOString();
        const status = data.status || (data.approved ? "APPROVED" : "REJECTED");
        if (li) closeGate(li, status, outcomeText(data, at));
        const line = document.createElement("li");
        line.dataset.task = event.task;
        line.className = "decision";
        line.textContent = decisionLine(event.task, data);
        line.hidden = selected !== null && selected !== event.task;
        logs.appendChild(line);
      } else if (event.type === "task.log") {
        const li = document.createElement("li");
        li.dataset.task = event.task;
        li.textContent = `${event.task}#${event.attempt} ${(event.data || {}).message || ""}`;
        li.hidden = selected !== null && selected !== event.task;
        logs.appendChild(li);
      }
    }, run.last_event_id);
    if (FINAL.has(run.status) && source) {
      source.close();
      if (liveState) liveState.textContent = `Run ${run.status.toLowerCase()}: up to date`;
      catchUpSpans();
    }
  }

  const runsTable = document.querySelector("table.runs[data-live]");
  if (runsTable) liveRuns(runsTable);
  const runData = document.getElementById("run-data");
  const childrenData = document.getElementById("children-data");
  if (runData) {
    const run = JSON.parse(runData.textContent);
    const children = childrenData
      ? liveChildren(run.id, JSON.parse(childrenData.textContent)) : { nudge() {} };
    if (typeof dagre !== "undefined") liveRun(run, children);
  }
  const activityData = document.getElementById("activity-data");
  if (activityData && typeof uPlot !== "undefined") {
    activityCharts(JSON.parse(activityData.textContent));
  }
  const workflowData = document.getElementById("workflow-data");
  if (workflowData && typeof dagre !== "undefined") {
    drawDag(document.getElementById("dag"), JSON.parse(workflowData.textContent), () => {});
  }
  // A form that cannot be undone (deleting a cron) asks first; without this script it
  // simply posts, as every other form does.
  document.addEventListener("submit", (e) => {
    const question = e.target.dataset && e.target.dataset.confirm;
    if (question && !window.confirm(question)) e.preventDefault();
  });
})();
