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
