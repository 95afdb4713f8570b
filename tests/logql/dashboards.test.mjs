// The provisioned dashboards' tables as Grafana builds them, with Grafana's own code
// (grafana_panel.mjs): Loki answers (fixtures/loki, recorded from the real Loki) and
// Prometheus answers (fixtures/prometheus, recorded from the real Prometheus fed by the real
// Loki's ruler; see fixtures/README.md) -> the datasource's frames -> the panel's
// transformations and field config -> the cells as displayed. Run by tests/validators/test_dashboards.py.
//
//   node --test tests/logql/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { backendFrames, lokiInstantFrames, prometheusRangeFrames, prometheusTableFrames, renderPanel, statDisplays,
  statTexts, tableText, themeColor } from "./grafana_panel.mjs";

const HERE = new URL(".", import.meta.url).pathname;
const read = (path) => JSON.parse(readFileSync(HERE + path, "utf8"));
const dashboard = (uid) => read(`../../observability/grafana/dashboards/${uid}.json`);
const panelOf = (uid, title) => dashboard(uid).panels.find((p) => p.title === title);
const fixture = (name) => read(`fixtures/loki/${name}.json`);

const COLUMNS = ["step", "name", "layer", "at (ms)", "hop (ms)", "source", "detail"];
// The one step definition (stackctl/trace/steps.py), passed by test_dashboards.py as
// `python -m stackctl.trace --json` prints it.
if (!process.env.TWELVE_STEPS_JSON) {
  throw new Error("TWELVE_STEPS_JSON is not set: run through tests/validators/test_dashboards.py, or set it to "
    + "the output of `.venv/bin/python -m stackctl.trace --json`");
}
const STEP_DEFINITION = JSON.parse(process.env.TWELVE_STEPS_JSON);
const NAMES = STEP_DEFINITION.map((s) => s.name);
const LAYERS = STEP_DEFINITION.map((s) => s.layer);
const steps = (...numbers) => numbers.map((n) => String(n).padStart(2, "0"));

/** Everything wrong with a rendered twelve-steps table for a request whose logs carry
 *  `expected` steps ([] = the table is right). */
function twelveStepsProblems(tables, expected, answers) {
  const problems = [];
  if (tables.length !== 1) return [`${tables.length} tables instead of one`];
  const [table] = tables;
  const names = table.columns.map((c) => c.name);
  if (JSON.stringify(names) !== JSON.stringify(COLUMNS)) problems.push(`columns ${names.join(" | ")}`);
  if (table.rows.length !== expected.length) problems.push(`${table.rows.length} rows instead of ${expected.length}`);
  const col = Object.fromEntries(names.map((n, i) => [n, i]));
  const at = table.columns[col["at (ms)"]];
  const hop = table.columns[col["hop (ms)"]];
  if (!at || at.unit !== "none" || at.decimals !== 3) problems.push("at column: not unit none, 3 decimals");
  if (!hop || hop.unit !== "none" || hop.decimals !== 3) problems.push("hop column: not unit none, 3 decimals");
  if (problems.length) return problems;
  const ats = Object.fromEntries(answers.AT.data.result.map((s) => [s.metric.step, s.value[1]]));
  const hops = Object.fromEntries(answers.HOP.data.result.map((s) => [s.metric.step, s.value[1]]));
  table.rows.forEach((row, i) => {
    const cell = (name) => row[col[name]];
    const step = cell("step").text;
    if (step !== expected[i]) problems.push(`row ${i}: step ${step}, expected ${expected[i]}`);
    if (cell("name").text !== NAMES[Number(step) - 1]) problems.push(`step ${step}: name ${cell("name").text}`);
    if (cell("layer").text !== LAYERS[Number(step) - 1]) problems.push(`step ${step}: layer ${cell("layer").text}`);
    if (!["measured", "derived"].includes(cell("source").text)) problems.push(`step ${step}: source ${cell("source").text}`);
    if (cell("at (ms)").text !== Number(ats[step]).toFixed(3)) {
      problems.push(`step ${step}: at ${cell("at (ms)").text}, Loki said ${ats[step]}`);
    }
    const hopText = hops[step] === undefined ? "" : Number(hops[step]).toFixed(3);
    if (cell("hop (ms)").text !== hopText) problems.push(`step ${step}: hop ${cell("hop (ms)").text}, Loki said ${hops[step]}`);
    if (!cell("detail").text) problems.push(`step ${step}: no detail`);
  });
  return problems;
}

const twelveSteps = () => panelOf("request-trace", "Twelve steps");

test("a page view's trace renders as twelve rows: step, name, layer, time, hop, source, detail", async () => {
  const { responses } = fixture("page");
  const tables = await renderPanel(twelveSteps(), lokiInstantFrames(responses));
  assert.deepEqual(twelveStepsProblems(tables, steps(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), responses), []);
  const rows = Object.fromEntries(tables[0].rows.map((r) => [r[0].text, r]));
  assert.equal(rows["05"][5].text, "measured", "step 5 is start_us of the wide event");
  assert.equal(rows["06"][5].text, "measured", "step 6 is db_start_us of the wide event");
  assert.match(rows["06"][6].text, /\d+ queries, [\d.]+ ms in the database, \d+ rows/);
  console.log(tableText(tables[0]));
});

for (const [name, expected, why] of [
  ["retry", steps(2, 3, 4, 5, 6, 7, 8, 9, 10, 11), "NGINX retried on the other instance (connect \"-, 0.000\")"],
  ["bad_gateway", steps(2, 10, 11), "502, no connection (connect \"-, -\"): step 10 still shown"],
  ["static", steps(2, 3, 11), "a static file: NGINX answered itself"],
  ["query_1", steps(2, 3, 4, 5, 6, 7, 8, 9, 10, 11), "a page with a query string, no beacon"],
]) {
  test(`${name}: the rows its logs carry (${why})`, async () => {
    const { responses } = fixture(name);
    const tables = await renderPanel(twelveSteps(), lokiInstantFrames(responses));
    assert.deepEqual(twelveStepsProblems(tables, expected, responses), []);
  });
}

test("negative control: the panel as it was with 24 single-series queries fails the same check on the same request", async () => {
  // Its 24 queries (T01..T12, H02..H12) return the same series one refId each, with a
  // `what` label naming the column; labelsToFields then has no labels to act on.
  const { responses } = fixture("page");
  const answers = {};
  for (const [column, what, prefix] of [["AT", "time", "T"], ["HOP", "hop_ms", "H"]]) {
    for (const series of responses[column].data.result) {
      answers[prefix + series.metric.step] = { status: "success",
        data: { resultType: "vector", result: [{ metric: { ...series.metric, what }, value: series.value }] } };
    }
  }
  const before = read("fixtures/twelve-steps-panel.before.json").panel;
  const tables = await renderPanel(before, lokiInstantFrames(answers));
  const problems = twelveStepsProblems(tables, steps(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), responses);
  assert.ok(problems.some((p) => p.startsWith("columns ") && p.includes("Value #T01") && p.includes("Value #H12")), problems.join("\n"));
  assert.ok(problems.some((p) => /^2\d rows instead of 12$/.test(p)), problems.join("\n"));

  // Renaming the value fields by regex before merging is no cure in Grafana 13: merge
  // keys fields by name and drops the display names renameByRegex sets.
  const renamed = { ...before, transformations: [
    { id: "renameByRegex", options: { regex: "Value #T.*", renamePattern: "time (epoch s)" } },
    { id: "renameByRegex", options: { regex: "Value #H.*", renamePattern: "hop (ms)" } },
    ...before.transformations.filter((t) => t.id !== "labelsToFields")] };
  const again = twelveStepsProblems(await renderPanel(renamed, lokiInstantFrames(answers)), steps(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), responses);
  assert.ok(again.some((p) => p.startsWith("columns ") && p.includes("Value #T01")), again.join("\n"));
});

test("no request id: the twelve steps stay empty and the first stat says what to do", async () => {
  // Every query filters request_id!="" first, so Loki answers nothing for an empty id.
  const empty = { AT: { status: "success", data: { resultType: "vector", result: [] } },
    HOP: { status: "success", data: { resultType: "vector", result: [] } } };
  const tables = await renderPanel(twelveSteps(), lokiInstantFrames(empty));
  assert.equal(tables.reduce((n, t) => n + t.rows.length, 0), 0);
  const lines = panelOf("request-trace", "Log lines for this request id");
  assert.deepEqual(statTexts(lines, []), ["Paste a request id into request_id above"]);
  assert.deepEqual(statTexts(lines, lokiInstantFrames({ A: { status: "success", data: { resultType: "vector",
    result: [{ metric: {}, value: [1795683774, "5"] }] } } })), ["5"]);
});

test("slowest paths: one row per method and path, no query strings, p95 in seconds", async () => {
  const panel = panelOf("stack-overview", "Slowest paths (NGINX request_time)");
  const { responses } = fixture("overview");
  const [table] = await renderPanel(panel, lokiInstantFrames(responses[panel.title]));
  assert.deepEqual(table.columns.map((c) => c.name), ["method", "path", "p95 request_time"]);
  assert.equal(table.columns[2].unit, "s");
  const paths = table.rows.map((r) => r[1].text);
  assert.ok(paths.includes("/pc-builder-app/builder"), paths.join(", "));
  assert.equal(new Set(paths).size, paths.length);
  assert.ok(paths.every((p) => !p.includes("?")), paths.join(", "));
  assert.ok(table.rows.every((r) => / m?s$/.test(r[2].text)), table.rows.map((r) => r[2].text).join(", "));
});

const waterfall = () => dashboard("request-trace").panels.find((p) => p.type === "barchart");

test("the waterfall: one bar per step, stacked on a transparent 'from', on one axis in ms", async () => {
  for (const [name, expected] of [["page", steps(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)], ["static", steps(2, 3, 11)],
    ["retry", steps(2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]]) {
    const { responses } = fixture(name);
    const frames = await renderPanel(waterfall(), lokiInstantFrames(responses));
    assert.equal(frames.length, 1, name);
    const [chart] = frames;
    // The bar chart draws every number field, stacked in order, along the x field (name).
    assert.deepEqual(chart.columns.map((c) => c.name), ["name", "from (ms)", "hop (ms)"], name);
    assert.deepEqual(chart.columns.slice(1).map((c) => c.unit), ["ms", "ms"]);
    assert.deepEqual(chart.columns[1].config.color, { mode: "fixed", fixedColor: "transparent" });
    assert.deepEqual(chart.rows.map((r) => r[0].text), expected.map((s) => NAMES[Number(s) - 1]), name);
    const at = Object.fromEntries(responses.AT.data.result.map((s) => [s.metric.step, Number(s.value[1])]));
    const hop = Object.fromEntries(responses.HOP.data.result.map((s) => [s.metric.step, Number(s.value[1])]));
    chart.rows.forEach((row, i) => {
      const step = expected[i];
      // each bar ends at its step's time: from + hop = at (a step without a hop is a bar of 0 at its time)
      assert.ok(Math.abs(row[1].raw + (row[2].raw ?? 0) - at[step]) < 1e-9, `${name} step ${step}: ${row[1].raw} + ${row[2].raw} != ${at[step]}`);
      assert.equal(row[2].raw ?? undefined, hop[step], `${name} step ${step} hop`);
    });
    assert.equal(chart.rows[0][1].raw, 0, "the first step is at 0 ms");
  }
});

test("slow and failed requests: one row per request, its start as a date, a link to its trace", async () => {
  const panel = panelOf("stack-overview", "Slow and failed requests (click a request_id to trace it)");
  const { responses } = fixture("overview");
  const answers = responses[panel.title];
  const [table] = await renderPanel(panel, lokiInstantFrames({ DURATION: answers.DURATION, STARTED: answers.STARTED }));
  const names = table.columns.map((c) => c.name);
  assert.deepEqual(names.slice(0, 7), ["started", "request_id", "instance", "method", "route", "status", "duration (ms)"]);
  assert.equal(table.rows.length, answers.DURATION.data.result.length);
  assert.ok(table.rows.length >= 2);
  const col = Object.fromEntries(names.map((n, i) => [n, i]));
  for (const row of table.rows) {
    const series = answers.DURATION.data.result.find((s) => s.metric.request_id === row[col.request_id].text);
    assert.ok(series, row[col.request_id].text);
    assert.equal(row[col["duration (ms)"]].text, Number(series.value[1]).toFixed(3));
    assert.match(row[col.started].text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, "started: a date, not epoch ms");
    assert.ok(Number(series.value[1]) >= answers.slow_ms);
  }
  const [link] = table.columns[col.request_id].config.links;
  assert.match(link.url, /^\/d\/request-trace\?var-request_id=\$\{__value\.raw\}&time=\$\{__data\.fields\.started\.numeric\}/);
});

// ---------------------------------------------------------------- SLOs and alerts (Prometheus)

const slo = read("fixtures/prometheus/slo-alerts.json");
const sloPanel = (title) => panelOf("slo-alerts", title);
const only = (answer) => answer.data.result.map((s) => Number(s.value[1]));

test("error budgets: what is left, in percent, red once overspent", () => {
  const { ok, failed } = slo.traffic;
  for (const title of ["Availability: error budget left (30 days)", "Latency: error budget left (30 days)"]) {
    const panel = sloPanel(title);
    const answer = slo.responses[title].A;
    const [left] = only(answer);
    const [shown] = statDisplays(panel, backendFrames("A", answer));
    assert.equal(shown.text, `${(left * 100).toFixed(1)}%`, title);
    const color = left < 0 ? "red" : left < 0.25 ? "orange" : "green";
    assert.equal(shown.color, themeColor(color), `${title}: ${left} shown in ${shown.color}`);
  }
  // the recorded traffic failed FAILED of OK+FAILED page requests (then only good ones): the
  // availability budget is overspent, the latency one (every page fast) untouched
  const [availability] = only(slo.responses["Availability: error budget left (30 days)"].A);
  assert.ok(availability < 0 && failed / (ok + failed) > 0.001, availability);
  assert.deepEqual(only(slo.responses["Latency: error budget left (30 days)"].A), [1]);
});

test("burn rates: one line per alert window, named by it, the alerts' thresholds drawn", () => {
  for (const title of ["Availability: burn rate by window", "Latency: burn rate by window"]) {
    const panel = sloPanel(title);
    const [target] = panel.targets;
    const frames = prometheusRangeFrames("A", slo.responses[title].A, target.legendFormat);
    const data = statDisplays({ ...panel, options: { reduceOptions: { calcs: ["lastNotNull"], values: false } } },
      frames);
    assert.equal(frames.length, 5, title);
    const names = frames.map((f) => f.fields[1].config.displayNameFromDS).sort();
    assert.deepEqual(names, ["1h", "30m", "3d", "5m", "6h"], title);
    for (const [i, shown] of data.entries()) {
      const last = Number(slo.responses[title].A.data.result[i].values.at(-1)[1]);
      assert.equal(shown.text, last.toFixed(1), title);
    }
    assert.ok(frames.every((f) => f.length > 1), `${title}: a line, not a point`);
  }
});

test("alerts table: one row per firing or pending alert, its labels as columns, no Time or Value", async () => {
  const panel = sloPanel("Alerts firing or pending now");
  const answer = slo.responses[panel.title].A;
  const [table] = await renderPanel(panel, prometheusTableFrames({ A: answer }));
  const names = table.columns.map((c) => c.name);
  assert.deepEqual(names.slice(0, 3), ["alertname", "alertstate", "severity"]);
  for (const hidden of ["Time", "Value", "__name__"]) assert.ok(!names.includes(hidden), names.join(", "));
  assert.equal(table.rows.length, answer.data.result.length);
  const col = Object.fromEntries(names.map((n, i) => [n, i]));
  const rows = table.rows.map((r) => `${r[col.alertname].text} ${r[col.alertstate].text}`).sort();
  assert.deepEqual(rows, answer.data.result.map((s) => `${s.metric.alertname} ${s.metric.alertstate}`).sort());
  assert.ok(rows.includes("AvailabilityFastBurn firing") && rows.includes("Watchdog firing"), rows.join(", "));
  for (const row of table.rows) {
    const state = row[col.alertstate];
    assert.equal(state.color, themeColor(state.text === "firing" ? "red" : "orange"), state.text);
  }
  // without its transformation the same frame shows Prometheus's Time, __name__ and Value
  const [raw] = await renderPanel({ ...panel, transformations: [] }, prometheusTableFrames({ A: answer }));
  assert.deepEqual(raw.columns.map((c) => c.name).filter((n) => ["Time", "__name__", "Value"].includes(n)),
    ["Time", "__name__", "Value"]);
});

test("alerts firing: the count leaves the always-firing Watchdog out", () => {
  const panel = sloPanel("Alerts firing");
  const firing = slo.responses["Alerts firing or pending now"].A.data.result
    .filter((s) => s.metric.alertstate === "firing" && s.metric.alertname !== "Watchdog").length;
  const [shown] = statDisplays(panel, backendFrames("A", slo.responses[panel.title].A));
  assert.equal(shown.text, String(firing));
  assert.equal(shown.color, themeColor(firing > 0 ? "red" : "green"));
});
