// PC Builder: progressive enhancement only; every page works without this file.
"use strict";

// Browser timing (steps 1 and 12 of `./stack trace <id>`): this page view's Navigation
// Timing and the Resource Timing of every fetch made through `timing.fetch`, each under
// the id of the request it times (the page's <meta name="request-id">, a fetch's
// X-Request-ID), sent to the timing beacon. Timings are batched and a beacon goes at most
// once a second, so a page that fetches on every keystroke or pick stays within the
// 2 a second NGINX allows the beacon per address; leaving the page sends what is queued.
var timing = (function browserTiming() {
  var MAX_BYTES = 2048, MAX_TIMINGS = 8, GAP_MS = 1000, MAX_PENDING = 20;
  var perf = window.performance;
  var on = !!(navigator.sendBeacon && perf && perf.timeOrigin && perf.now);
  var queue = [], lastSent = -Infinity, timer = null;
  var pending = [];  // fetches made, not yet matched to both their id and their entry

  function ms(value) { return Math.round(value * 1000) / 1000; }

  function send() {
    var batch = [];
    while (queue.length && batch.length < MAX_TIMINGS &&
           JSON.stringify({ timings: batch.concat([queue[0]]) }).length <= MAX_BYTES) {
      batch.push(queue.shift());
    }
    if (!batch.length) { queue.shift(); return; }  // cannot happen: one timing is < 600 bytes
    lastSent = perf.now();
    // A string body goes as text/plain: a "simple" request, no CORS preflight.
    navigator.sendBeacon("/pc-builder-app/api/timing", JSON.stringify({ timings: batch }));
  }

  function flushLater() {
    if (timer !== null || !queue.length) return;
    timer = setTimeout(function () {
      timer = null;
      send();
      flushLater();
    }, Math.max(0, lastSent + GAP_MS - perf.now()));
  }

  function report(entry) {
    queue.push(entry);
    flushLater();
  }

  // A fetch is reported once both its X-Request-ID (with the headers) and its Resource
  // Timing entry (once the body is read) are known. Entries are named by URL, so each
  // fetch takes the first unclaimed entry for its URL that started after it was made.
  function match() {
    pending = pending.filter(function (item) {
      if (!item.entry || item.id === null) return true;
      var e = item.entry;
      if (item.id && e.requestStart > 0 && e.requestStart <= e.responseStart &&
          e.responseStart <= e.responseEnd) {
        report({
          kind: "fetch", request_id: item.id, page: new URL(item.url).pathname.slice(0, 256),
          timeOrigin: ms(perf.timeOrigin), requestStart: ms(e.requestStart),
          responseStart: ms(e.responseStart), responseEnd: ms(e.responseEnd)
        });
      }
      return false;
    });
  }

  function claim(entries) {
    entries.forEach(function (e) {
      if (e.initiatorType !== "fetch") return;
      var item = pending.find(function (p) { return !p.entry && p.url === e.name && e.startTime >= p.after - 1; });
      if (item) item.entry = e;
    });
    match();
  }

  var observer = null;
  if (on && window.PerformanceObserver) {
    try {
      observer = new PerformanceObserver(function (list) { claim(list.getEntries()); });
      observer.observe({ type: "resource", buffered: true });
    } catch (err) {
      on = false;  // no Resource Timing here: fetches are still made, just not timed
    }
  }

  function tracedFetch(url, options) {
    if (!on) return fetch(url, options);
    var item = { url: new URL(url, location.href).href, after: perf.now(), id: null, entry: null };
    pending.push(item);
    if (pending.length > MAX_PENDING) pending.shift();  // an entry that never came
    return fetch(url, options).then(function (response) {
      item.id = response.headers.get("X-Request-ID") || "";
      match();
      return response;
    }, function (error) {
      pending = pending.filter(function (p) { return p !== item; });
      throw error;
    });
  }

  // This navigation, once the load event has finished (loadEventEnd is set only after the
  // load handlers have returned: hence the next tick), or whatever it has when the page is
  // left before that.
  var meta = document.querySelector('meta[name="request-id"]');
  var pageId = meta && meta.getAttribute("content");
  var navigationReported = false;
  function reportNavigation() {
    var nav = perf.getEntriesByType && perf.getEntriesByType("navigation")[0];
    if (navigationReported || !pageId || !nav) return;
    navigationReported = true;
    report({
      kind: "navigation", request_id: pageId, page: location.pathname.slice(0, 256),
      timeOrigin: ms(perf.timeOrigin), requestStart: ms(nav.requestStart),
      responseStart: ms(nav.responseStart), responseEnd: ms(nav.responseEnd),
      domContentLoadedEventEnd: ms(nav.domContentLoadedEventEnd), loadEventEnd: ms(nav.loadEventEnd)
    });
  }
  if (on) {
    if (document.readyState === "complete") {
      setTimeout(reportNavigation, 0);
    } else {
      window.addEventListener("load", function () { setTimeout(reportNavigation, 0); }, { once: true });
    }
    // pagehide fires before unload, also for a page going into the back-forward cache.
    window.addEventListener("pagehide", function () {
      reportNavigation();
      // Entries recorded but not yet delivered to the observer (it is called later, in a
      // task of its own): without them a fetch answered just before leaving is not timed.
      if (observer) claim(observer.takeRecords());
      clearTimeout(timer);
      timer = null;
      while (queue.length) send();
    });
  }

  return { fetch: tracedFetch };
})();

// The footer shows the id of the request that produced what the page shows: the page
// load's, then that of each fetch that changed the page.
function showRequestId(id) {
  var code = document.getElementById("request-id");
  if (code && id) code.textContent = id;
}

function el(tag, attrs, children) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
  (children || []).forEach(function (child) {
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  });
  return node;
}

// Components table: the filter fields and the column headers update the list in place, as
// you type or choose, with the rows the server renders for the same address (fetched and
// swapped in); the address follows, so it stays a shareable /table?... URL.
(function liveTable() {
  var form = document.getElementById("table-filters");
  var listing = document.getElementById("listing");
  if (!form || !listing || !window.fetch || !window.DOMParser || !history.replaceState) return;
  var latest = 0, typing = null;
  form.querySelector("button.apply").hidden = true;

  function load(params) {
    var url = form.action + (params.toString() ? "?" + params.toString() : "");
    var ticket = ++latest;  // only the answer to the latest change is shown
    timing.fetch(url, { headers: { "Accept": "text/html" } }).then(function (response) {
      return response.text().then(function (html) { return { response: response, html: html }; });
    }).then(function (answer) {
      if (ticket !== latest) return;
      var fresh = new DOMParser().parseFromString(answer.html, "text/html").getElementById("listing");
      if (!fresh) throw new Error("no listing in the answer");
      listing.replaceWith(fresh);
      listing = fresh;
      history.replaceState(null, "", url);
      showRequestId(answer.response.headers.get("X-Request-ID"));
    }).catch(function () {
      if (ticket === latest) window.location.assign(url);  // let the page itself say what went wrong
    });
  }

  function fromForm() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (name === "q" ? value.trim() : value) params.append(name, name === "q" ? value.trim() : value);
    });
    return params;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(typing);
    load(fromForm());
  });
  form.addEventListener("change", function (event) {
    if (event.target.name !== "q") load(fromForm());
  });
  form.addEventListener("input", function (event) {
    if (event.target.name !== "q") return;
    clearTimeout(typing);
    typing = setTimeout(function () { load(fromForm()); }, 250);
  });
  // A header sorts by its column: its link says how; the fields follow it.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#listing a.sort");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    var params = new URL(link.href).searchParams;
    form.elements.sort.value = params.get("sort");
    form.elements.order.value = params.get("order");
    load(fromForm());
  });
})();

// Builder: check the build through the JSON API each time a part is picked, show the
// verdict as the server renders it (same ids and classes) with the id of the request that
// produced it, keep the summary at the bottom of the screen in step, and mark in the
// pickers what cannot work with the parts picked. The address follows the picks, so it
// stays the shareable /builder?cpu=..&.. URL.
(function checkBuildAsYouPick() {
  var form = document.querySelector("form.builder[data-check-url]");
  if (!form || !window.fetch || !window.URLSearchParams || !history.replaceState) return;
  var checkUrl = form.getAttribute("data-check-url");
  var selects = Array.prototype.slice.call(form.querySelectorAll("select"));
  var summary = document.getElementById("verdict-summary");
  var money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  var latest = 0;

  function labelOf(category) {
    var label = form.querySelector('label[for="pick-' + category + '"]');
    return label ? label.textContent.trim() : category;
  }

  function specsOf(component) {
    var select = form.querySelector('select[name="' + component.category + '"]');
    var option = select && select.querySelector('option[value="' + component.id + '"]');
    return option ? option.getAttribute("data-specs") || "" : "";
  }

  function requestRef(text, id) {
    return el("p", { "class": "request-ref" }, [text, el("code", { "class": "verdict-request-id" }, [id || "none"])]);
  }

  function partRow(c) {
    return el("tr", { "class": "build-part", "data-id": String(c.id) }, [
      el("th", { scope: "row" }, [labelOf(c.category)]),
      el("td", { "class": "name" }, [c.brand + " " + c.name]),
      el("td", { "class": "specs" }, [specsOf(c)]),
      el("td", { "class": "num" }, [money.format(c.price)])
    ]);
  }

  function verdict(result, id) {
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
    section.appendChild(requestRef("Checked by request ", id));
    return section;
  }

  function failure(message, id) {
    return el("div", { "class": "notice error", id: "form-errors" }, [
      el("p", {}, [message]), requestRef("Request id: ", id)]);
  }

  function summarize(bad, parts, target, id) {
    summary.replaceChildren(
      el("p", { "class": "verdict-line" }, parts.concat([" ", el("a", { href: "#" + target }, ["Details"])])),
      el("p", { "class": "request-ref" }, ["request ", el("code", { "class": "verdict-request-id" }, [id || "none"])]));
    summary.classList.toggle("bad", bad);
    summary.hidden = false;
  }

  function summarizeResult(result, id) {
    var n = result.problems.length;
    var parts = [el("strong", {}, [n ? "✗ " + n + " compatibility problem" + (n === 1 ? "" : "s")
                                     : "✓ No compatibility problems"]),
                 " · ", el("span", { "class": "verdict-total" }, [money.format(result.total_price)])];
    if (result.missing.length) parts.push(" · " + result.missing.length + " not chosen");
    summarize(n > 0, parts, "build-result", id);
  }

  // Each option that cannot work with the other parts picked says why after its label.
  function mark(conflicts) {
    selects.forEach(function (select) {
      var notes = {};
      (conflicts[select.name] || []).forEach(function (c) { notes[String(c.id)] = c.note; });
      Array.prototype.forEach.call(select.options, function (option) {
        var label = option.getAttribute("data-label");
        if (!label) return;
        var note = notes[option.value];
        option.textContent = note ? label + " — ✗ " + note : label;
        if (note) option.setAttribute("data-conflict", note);
        else option.removeAttribute("data-conflict");
      });
    });
  }

  // Replaces the previous verdict and any earlier input errors (the selects hold valid
  // choices now) with ``node``, or just removes them when ``node`` is null.
  function show(node, id) {
    ["form-errors", "build-result"].forEach(function (name) {
      var old = document.getElementById(name);
      if (old) old.remove();
    });
    if (node) summary.after(node);
    showRequestId(id);
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
    if (!query) { show(null); mark({}); summary.hidden = true; return; }
    timing.fetch(checkUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ components: chosen })
    }).then(function (response) {
      var id = response.headers.get("X-Request-ID");
      return response.json().then(function (body) {
        return { ok: response.ok, body: body, id: id || body.request_id };
      }, function () {
        return { ok: false, body: { error: response.status + " " + response.statusText }, id: id };
      });
    }).then(function (answer) {
      if (ticket !== latest) return;
      if (answer.ok) {
        show(verdict(answer.body, answer.id), answer.id);
        summarizeResult(answer.body, answer.id);
        mark(answer.body.conflicts || {});
        return;
      }
      var message = answer.body.error + (answer.body.detail ? ": " + answer.body.detail : "");
      show(failure("Could not check the build: " + message, answer.id), answer.id);
      summarize(true, [el("strong", {}, ["✗ Could not check the build"]), " · " + answer.body.error],
                "form-errors", answer.id);
      mark({});
    }).catch(function () {
      if (ticket !== latest) return;
      show(failure("Could not check the build just now; press Check build.", null));
      summarize(true, [el("strong", {}, ["✗ Could not check the build just now"])], "form-errors", null);
    });
  });
})();
