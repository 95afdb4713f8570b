// PC Builder: progressive enhancement only; every page works without this file.
"use strict";

// Instant filter on the components table: hides rows not containing the typed text.
(function instantTableFilter() {
  var input = document.getElementById("table-filter");
  var table = document.getElementById("components-table");
  if (!input || !table) return;
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr.component-row"));
  var count = document.getElementById("table-filter-count");
  input.closest(".instant-filter").hidden = false;

  input.addEventListener("input", function () {
    var needle = input.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = row.textContent.toLowerCase().indexOf(needle) !== -1;
      row.hidden = !match;
      if (match) shown += 1;
    });
    if (count) count.textContent = needle ? shown + " of " + rows.length + " shown" : "";
  });
})();

// Builder: check the build through the JSON API each time a part is picked and show the
// verdict as the server renders it (same ids and classes) without leaving the page. The
// address follows the picks, so it stays the shareable /builder?cpu=..&.. URL.
(function checkBuildAsYouPick() {
  var form = document.querySelector("form.builder[data-check-url]");
  if (!form || !window.fetch || !window.URLSearchParams || !history.replaceState) return;
  var checkUrl = form.getAttribute("data-check-url");
  var selects = Array.prototype.slice.call(form.querySelectorAll("select"));
  var money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  var latest = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function labelOf(category) {
    var label = form.querySelector('label[for="pick-' + category + '"]');
    return label ? label.textContent.trim() : category;
  }

  function specsOf(component) {
    var select = form.querySelector('select[name="' + component.category + '"]');
    var option = select && select.querySelector('option[value="' + component.id + '"]');
    return option ? option.getAttribute("data-specs") || "" : "";
  }

  function partRow(c) {
    return el("tr", { "class": "build-part", "data-id": String(c.id) }, [
      el("th", { scope: "row" }, [labelOf(c.category)]),
      el("td", { "class": "name" }, [c.brand + " " + c.name]),
      el("td", { "class": "specs" }, [specsOf(c)]),
      el("td", { "class": "num" }, [money.format(c.price)])
    ]);
  }

  function verdict(result) {
    var section = el("section", { "class": "build-result", id: "build-result" }, [
      el("h2", {}, ["Your build"]),
      el("table", { "class": "components" }, [
        el("tbody", {}, result.components.map(partRow)),
        el("tfoot", {}, [el("tr", {}, [
          el("th", { scope: "row" }, ["Total"]),
          el("td", { colspan: "2", "class": "spacer" }),
          el("td", { "class": "num", id: "total-price" }, [money.format(result.total_price)])
        ])])
      ]),
      el("p", {}, ["Estimated draw: " + result.estimated_draw_w + " W; recommended power supply: " +
                   "at least " + result.required_psu_w + " W."])
    ]);
    if (result.problems.length) {
      section.appendChild(el("div", { "class": "notice error" }, [
        el("h3", {}, ["Compatibility problems"]),
        el("ul", { id: "problems" }, result.problems.map(function (p) {
          return el("li", { "data-code": p.code }, [p.message]);
        }))
      ]));
    } else {
      section.appendChild(el("p", { "class": "notice ok", id: "no-problems" },
                             ["No compatibility problems found."]));
    }
    if (result.missing.length) {
      section.appendChild(el("p", { "class": "missing", id: "missing" },
                             ["Not chosen yet: " + result.missing.map(labelOf).join(", ") + "."]));
    }
    return section;
  }

  function failure(message) {
    return el("div", { "class": "notice error", id: "form-errors" }, [el("p", {}, [message])]);
  }

  // Replaces the previous verdict and any earlier input errors (the selects hold valid
  // choices now) with ``node``, or just removes them when ``node`` is null.
  function show(node) {
    ["form-errors", "build-result"].forEach(function (id) {
      var old = document.getElementById(id);
      if (old) old.remove();
    });
    if (node) form.after(node);
  }

  form.addEventListener("change", function () {
    var chosen = {};
    var params = new URLSearchParams();
    selects.forEach(function (select) {
      if (!select.value) return;
      chosen[select.name] = parseInt(select.value, 10);
      params.append(select.name, select.value);
    });
    var query = params.toString();
    history.replaceState(null, "", form.action + (query ? "?" + query : ""));
    var ticket = ++latest;  // only the answer to the latest pick is shown
    if (!query) { show(null); return; }
    fetch(checkUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ components: chosen })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (answer) {
      if (ticket !== latest) return;
      show(answer.ok ? verdict(answer.body)
                     : failure(answer.body.error + (answer.body.detail ? ": " + answer.body.detail : "")));
    }).catch(function () {
      if (ticket === latest) show(failure("Could not check the build just now; press Check build."));
    });
  });
})();

// Navigation-timing beacon. Once per page view, after the load event has finished, send this navigation's timing
// (PerformanceNavigationTiming, ms from timeOrigin) with the page's request id, so that
// `./stack trace <id>` can show step 1 (client sends) and step 12 (client receives).
(function navigationTimingBeacon() {
  var meta = document.querySelector('meta[name="request-id"]');
  var rid = meta && meta.getAttribute("content");
  if (!rid || !navigator.sendBeacon || !window.performance || !performance.getEntriesByType) return;
  var sent = false;

  function send() {
    if (sent) return;
    var nav = performance.getEntriesByType("navigation")[0];
    if (!nav) return;
    sent = true;
    var payload = {
      request_id: rid,
      page: location.pathname.slice(0, 256),
      timeOrigin: performance.timeOrigin,
      requestStart: nav.requestStart,
      responseStart: nav.responseStart,
      responseEnd: nav.responseEnd,
      domContentLoadedEventEnd: nav.domContentLoadedEventEnd,
      loadEventEnd: nav.loadEventEnd
    };
    // A string body goes as text/plain: a "simple" request, no CORS preflight.
    navigator.sendBeacon("/pc-builder-app/api/timing", JSON.stringify(payload));
  }

  if (document.readyState === "complete") {
    setTimeout(send, 0);
  } else {
    // loadEventEnd is set only once the load handlers have returned: send on the next tick.
    window.addEventListener("load", function () { setTimeout(send, 0); }, { once: true });
  }
  // A page left before load still reports what it has (pagehide fires before unload).
  window.addEventListener("pagehide", send, { once: true });
})();
