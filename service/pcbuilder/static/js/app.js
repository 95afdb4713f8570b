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

// ---------------------------------------------------------------------------
// NAVIGATION-TIMING BEACON: reserved for the lead engineer; add it below this line.
// (The request id is in <meta name="request-id">.)
// ---------------------------------------------------------------------------
