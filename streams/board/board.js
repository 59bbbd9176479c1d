// The live board: polls board.json every 2 s and draws it. No build step, no dependencies.
//
// Polling, not server-sent events: each API server answers from its own worker's stations and
// fans out to the other workers per request, so a poll is one consistent, complete picture;
// API servers are restarted by their workers and may sit behind proxies, and a poll needs no
// reconnection logic there; and a failed or late poll is exactly the signal the "cannot reach
// the API" banner needs. The cost is one ~45 kB (gzipped) answer per viewer every 2 s for a
// district of 1,400 stations; the server merges at most once a second for all viewers.
//
// Drawing stays cheap with thousands of stations: one <circle> per station, created once and
// touched only when its position, liveness or tooltip changed; offline and stale dots live in
// a group drawn last, so no green dot hides a red one. Station names go into the page as text
// (textContent), never as markup.
(function () {
  "use strict";

  const POLL_MS = 2000;
  const HIDDEN_POLL_MS = 10000; // while the tab is not visible
  const TIMEOUT_MS = 5000;
  const OFFLINE_SHOWN = 200; // rows of the offline list; the rest are counted
  const LIVENESS = ["online", "stale", "offline", "unknown", "not_monitored"];
  const ALERTING = new Set(["offline", "stale"]);
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "stationwatch.token";

  const $ = (id) => document.getElementById(id);
  const stats = { polls: 0, renders: 0, lastRenderMs: 0, maxRenderMs: 0, failures: 0 };
  const dots = new Map(); // station id → {el, title, x, y, liveness, tip}
  let mapKey = "";
  let streetsKey = "";
  let radius = 5;
  let lastOk = null; // {at: performance.now(), board}
  let problem = null; // why the last poll failed, or null
  let timer = null;
  let token = null;
  try {
    token = window.localStorage.getItem(TOKEN_KEY);
  } catch (err) {
    token = null; // storage disabled: ask again after each reload
  }

  // -- times ---------------------------------------------------------------------------------

  // An ISO 8601 time with an offset, as the API writes it: its instant and its wall-clock
  // parts as written (the API gives times in the answer's zone; the browser's zone is not used).
  const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}(?::\d{2})?)$/;
  function parseIso(text) {
    const m = typeof text === "string" ? ISO.exec(text) : null;
    if (!m) return null;
    const [, y, mo, d, h, mi, s, frac, off] = m;
    const ms = frac ? Number((frac + "00").slice(0, 3)) : 0;
    let offsetMin = 0;
    if (off !== "Z") {
      const sign = off[0] === "-" ? -1 : 1;
      offsetMin = sign * (Number(off.slice(1, 3)) * 60 + Number(off.slice(4, 6)));
    }
    const epoch = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, ms) - offsetMin * 60000;
    return { epoch, date: `${y}-${mo}-${d}`, time: `${h}:${mi}:${s}`, offset: off === "Z" ? "+00:00" : off.slice(0, 6) };
  }

  function formatDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s} s`;
    const min = Math.floor(s / 60);
    if (min < 60) return `${min} min`;
    const h = Math.floor(min / 60);
    if (h < 48) return `${h} h ${min % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  // "15:04:05 (12 min)": since when, as written in the answer's zone, and for how long as of
  // the answer (not the browser's clock, which may be off).
  function formatSince(since, asOf) {
    const at = parseIso(since);
    if (!at) return "since unknown";
    const now = parseIso(asOf);
    const day = now && now.date === at.date ? "" : `${at.date} `;
    const length = now ? ` (${formatDuration(now.epoch - at.epoch)})` : "";
    return `since ${day}${at.time}${length}`;
  }

  // -- the map -------------------------------------------------------------------------------

  function svg(name, attrs) {
    const el = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return el;
  }

  function niceLength(metres) {
    const power = Math.pow(10, Math.floor(Math.log10(metres)));
    for (const step of [5, 2, 1]) if (step * power <= metres) return step * power;
    return power;
  }

  function drawFrame(map, count) {
    const key = `${map.width}x${map.height}x${map.metres_per_unit}x${count}`;
    if (key === mapKey) return;
    mapKey = key;
    const box = $("map");
    box.setAttribute("viewBox", `0 0 ${map.width} ${map.height}`);
    const ground = $("map-ground");
    ground.setAttribute("width", map.width);
    ground.setAttribute("height", map.height);
    // dots shrink as stations crowd the map
    const next = Math.max(2.5, Math.min(9, (0.16 * Math.max(map.width, map.height)) / Math.sqrt(Math.max(count, 1))));
    if (next !== radius) {
      radius = next;
      for (const dot of dots.values()) dot.el.setAttribute("r", radius);
    }
    const scale = $("scale");
    scale.replaceChildren();
    const metres = niceLength(map.metres_per_unit * map.width * 0.2);
    const length = metres / map.metres_per_unit;
    const x0 = 12, y0 = map.height - 12;
    scale.append(
      svg("line", { x1: x0, y1: y0, x2: x0 + length, y2: y0 }),
      svg("line", { x1: x0, y1: y0 - 5, x2: x0, y2: y0 }),
      svg("line", { x1: x0 + length, y1: y0 - 5, x2: x0 + length, y2: y0 }),
    );
    const label = svg("text", { x: x0, y: y0 - 8 });
    label.textContent = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
    scale.append(label);
    const north = $("north");
    north.replaceChildren();
    // in the top margin, clear of the stations
    const nx = map.width - 10;
    north.append(svg("path", { d: `M ${nx} 26 L ${nx} 6 M ${nx - 4} 11 L ${nx} 6 L ${nx + 4} 11` }));
    const n = svg("text", { x: nx - 14, y: 22 });
    n.textContent = "N";
    north.append(n);
  }

  function drawStreets(streets) {
    const key = JSON.stringify(streets);
    if (key === streetsKey) return;
    streetsKey = key;
    const group = $("streets");
    group.replaceChildren();
    for (const street of streets) {
      const label = svg("text", { class: "street", x: street.x, y: street.y - 10 });
      label.textContent = street.name;
      group.append(label);
    }
  }

  function tipOf(station, asOf) {
    const name = station.name || "(no name)";
    const heard = parseIso(station.last_heartbeat_at);
    const last = heard ? `\nlast heartbeat ${heard.date} ${heard.time}` : "";
    return `${name} (${station.id})\n${station.liveness} ${formatSince(station.liveness_since, asOf)}${last}`;
  }

  function drawDots(board) {
    const plain = $("dots");
    const alerting = $("dots-alert");
    const added = document.createDocumentFragment();
    const addedAlerting = document.createDocumentFragment();
    const seen = new Set();
    for (const station of board.stations) {
      if (station.x === null || station.y === null) continue;
      seen.add(station.id);
      let dot = dots.get(station.id);
      const isNew = dot === undefined;
      if (isNew) {
        const el = svg("circle", { r: radius, "data-id": station.id });
        const title = svg("title");
        el.append(title);
        dot = { el, title, x: null, y: null, liveness: null, tip: null };
        dots.set(station.id, dot);
      }
      if (dot.x !== station.x || dot.y !== station.y) {
        dot.el.setAttribute("cx", station.x);
        dot.el.setAttribute("cy", station.y);
        dot.x = station.x;
        dot.y = station.y;
      }
      if (dot.liveness !== station.liveness) {
        dot.el.setAttribute("class", `dot ${station.liveness}`);
        dot.el.setAttribute("data-liveness", station.liveness);
        const wasAlerting = ALERTING.has(dot.liveness);
        const nowAlerting = ALERTING.has(station.liveness);
        dot.liveness = station.liveness;
        if (isNew) (nowAlerting ? addedAlerting : added).append(dot.el);
        else if (wasAlerting !== nowAlerting) (nowAlerting ? alerting : plain).append(dot.el);
      }
      const tip = tipOf(station, board.as_of);
      if (dot.tip !== tip) {
        dot.title.textContent = tip;
        dot.tip = tip;
      }
    }
    plain.append(added);
    alerting.append(addedAlerting);
    for (const [id, dot] of dots) {
      if (!seen.has(id)) {
        dot.el.remove();
        dots.delete(id);
      }
    }
  }

  // -- the side panel ------------------------------------------------------------------------

  function drawCounts(board) {
    $("count-total").textContent = String(board.total);
    for (const liveness of LIVENESS) {
      const n = board.by_liveness[liveness] || 0;
      const cell = $(`count-${liveness}`);
      cell.textContent = String(n);
      cell.setAttribute("data-count", String(n));
    }
    const unplaced = $("unplaced");
    unplaced.hidden = !board.unplaced;
    unplaced.textContent = board.unplaced ? `${board.unplaced} station(s) without a location are counted but not drawn.` : "";
  }

  function drawOffline(board) {
    const byId = new Map(board.stations.map((s) => [s.id, s]));
    const list = $("offline-list");
    const rows = document.createDocumentFragment();
    for (const id of board.offline.slice(0, OFFLINE_SHOWN)) {
      const station = byId.get(id);
      if (!station) continue;
      const row = document.createElement("li");
      row.setAttribute("data-id", id);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = station.name || id;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${id}${station.street ? " · " + station.street : ""} · ${formatSince(station.liveness_since, board.as_of)}`;
      row.append(name, meta);
      rows.append(row);
    }
    list.replaceChildren(rows);
    $("offline-none").hidden = board.offline.length > 0;
    const more = $("offline-more");
    more.hidden = board.offline.length <= OFFLINE_SHOWN;
    more.textContent = `and ${board.offline.length - OFFLINE_SHOWN} more`;
  }

  // hovering a row of the offline list marks its dot (rows are redrawn under the pointer,
  // so the previous mark is cleared here rather than on a mouseout that may never come)
  let focused = null;
  function focusDot(event, on) {
    if (focused) focused.el.classList.remove("focus");
    focused = null;
    const row = on && event.target.closest ? event.target.closest("li[data-id]") : null;
    const dot = row ? dots.get(row.getAttribute("data-id")) : undefined;
    if (dot) {
      dot.el.classList.add("focus");
      focused = dot;
    }
  }

  // -- freshness: the banner and "updated at" ------------------------------------------------

  function problems() {
    const found = [];
    const now = performance.now();
    if (problem !== null) {
      const since = lastOk ? ` The board shows the state of ${stamp(lastOk.board)}, ${formatDuration(now - lastOk.at)} ago.` : "";
      found.push(["unreachable", `Cannot reach the stationwatch API: ${problem}.${since}`]);
    } else if (lastOk && now - lastOk.at > 3 * POLL_MS + TIMEOUT_MS) {
      found.push(["unreachable", `No answer from the API for ${formatDuration(now - lastOk.at)}.`]);
    }
    if (lastOk) {
      const board = lastOk.board;
      if (board.data_age_s === null) {
        found.push(["old", "A worker has not reported yet: the data may be incomplete or old."]);
      } else if (board.data_age_s > board.data_old_after_s) {
        found.push(["old", `The worker has not reported for ${formatDuration(board.data_age_s * 1000)}: the data is old.`]);
      }
      if (!board.complete) {
        found.push(["incomplete", `Partitions ${board.missing_partitions.join(", ")} did not answer: their stations are missing.`]);
      }
    }
    return found;
  }

  function stamp(board) {
    const at = parseIso(board.as_of);
    return at ? `${at.time} (UTC${at.offset})` : board.as_of;
  }

  function drawFreshness() {
    const found = problems();
    const banner = $("banner");
    banner.hidden = found.length === 0;
    banner.setAttribute("data-problem", found.length ? found[0][0] : "");
    const lines = found.map(([, text]) => {
      const line = document.createElement("p");
      line.textContent = text;
      return line;
    });
    banner.replaceChildren(...lines);
    document.body.classList.toggle("outdated", found.some(([kind]) => kind !== "incomplete"));
    const updated = $("updated");
    if (lastOk) {
      const age = formatDuration(performance.now() - lastOk.at);
      updated.textContent = `updated ${stamp(lastOk.board)}, ${age} ago`;
      updated.setAttribute("data-as-of", lastOk.board.as_of);
    } else {
      updated.textContent = problem ? "no data yet" : "loading…";
    }
  }

  // -- polling -------------------------------------------------------------------------------

  function render(board) {
    const started = performance.now();
    if (board.map) drawFrame(board.map, board.stations.length);
    drawStreets(board.streets);
    drawDots(board);
    drawCounts(board);
    drawOffline(board);
    $("complete").hidden = true;
    const took = performance.now() - started;
    stats.renders += 1;
    stats.lastRenderMs = took;
    stats.maxRenderMs = Math.max(stats.maxRenderMs, took);
  }

  function fail(reason) {
    stats.failures += 1;
    problem = reason;
  }

  async function poll() {
    stats.polls += 1;
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch("board.json", { headers, signal: abort.signal, cache: "no-store" });
      if (response.status === 401) {
        $("token-form").hidden = false;
        fail("the API needs a bearer token (enter it above)");
      } else if (!response.ok) {
        let detail = "";
        try {
          detail = `: ${(await response.json()).error}`;
        } catch (err) {
          detail = "";
        }
        fail(`it answered ${response.status}${detail}`);
      } else {
        const board = await response.json();
        render(board);
        lastOk = { at: performance.now(), board };
        problem = null;
      }
    } catch (err) {
      fail(err && err.name === "AbortError" ? `no answer within ${TIMEOUT_MS / 1000} s` : `the request failed (${err && err.message})`);
    } finally {
      clearTimeout(deadline);
      drawFreshness();
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  function start() {
    $("offline-list").addEventListener("mouseover", (e) => focusDot(e, true));
    $("offline-list").addEventListener("mouseout", (e) => focusDot(e, false));
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      token = $("token").value.trim() || null;
      try {
        if (token) window.localStorage.setItem(TOKEN_KEY, token);
      } catch (err) {
        // not kept across reloads; still used now
      }
      $("token-form").hidden = true;
      clearTimeout(timer);
      poll();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        clearTimeout(timer);
        poll();
      }
    });
    setInterval(drawFreshness, 1000); // the ages, and the banner when polls stop coming back
    poll();
  }

  // for tests and the curious: the counters and the pure helpers
  window.stationBoard = { stats, parseIso, formatDuration, formatSince };
  start();
})();
