// What Grafana does between a Loki answer and a table panel's cells, with Grafana's own
// code (@grafana/data, the package Grafana's frontend is built from) wherever it is
// published:
//
// 1. Grafana's backend turns each series of an instant (vector) answer into a frame of a
//    Time field and a Value field carrying the series' labels (pkg/tsdb/loki/frame.go).
// 2. The Loki datasource's frontend turns a query's instant frames into ONE table frame:
//    Time, one string column per label (sorted), and the values as `Value #<refId>`
//    (public/app/plugins/datasource/loki/makeTableFrames.ts). That file is not published
//    on npm, so makeTableFrames below restates it (18 lines, same behaviour).
// 3. The panel's transformations run through @grafana/data's transformDataFrame with
//    @grafana/data's transformers (the registry Grafana's app fills from them).
// 4. Field config and overrides are applied by @grafana/data's applyFieldOverrides and
//    each cell is formatted by its display processor (unit, decimals) as the table shows
//    it. The standard options (unit, decimals, ...) are registered by Grafana's app
//    (public/app/core/components/OptionsUI/registry.tsx), not the npm package: they are
//    registered here with the same ids, paths and @grafana/data processors.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const gd = require("@grafana/data");
const { firstValueFrom } = require("rxjs");

// transformDataFrame reads window.__grafanaSceneContext: Grafana 12+ dashboards are Scenes
// dashboards, which interpolate variables before the transformations run.
globalThis.window ??= { __grafanaSceneContext: {} };
// Date formats read the browser's locale (Node 21+ has navigator; Debian's Node 20 not).
globalThis.navigator ??= { language: "en-US", languages: ["en-US"] };

const { FieldType, standardTransformers, standardTransformersRegistry } = gd;
export const GRAFANA_DATA_VERSION = require("@grafana/data/package.json").version;

// seriesToColumns is joinByField under an older name: one entry per id.
standardTransformersRegistry.setInit(() =>
  [...new Map(Object.values(standardTransformers).map((t) => [t.id, t])).values()].map((t) => ({
    id: t.id,
    name: t.name,
    description: t.description,
    transformation: () => Promise.resolve(t),
    editor: () => null,
  })),
);

/** The transformation ids Grafana's npm code can run (the app adds a few more). */
export function knownTransformations() {
  return new Set(standardTransformersRegistry.list().map((t) => t.id));
}

/** Step 1: a Loki /query answer (resultType vector) as Grafana's backend frames. */
export function backendFrames(refId, answer) {
  if (answer?.status !== "success" || answer.data?.resultType !== "vector") {
    throw new Error(`${refId}: not a Loki vector answer`);
  }
  return answer.data.result.map((series) => ({
    refId,
    length: 1,
    fields: [
      { name: "Time", type: FieldType.time, config: {}, values: [series.value[0] * 1000] },
      { name: "Value", type: FieldType.number, labels: { ...series.metric }, config: {},
        values: [Number(series.value[1])] },
    ],
  }));
}

/** Step 2: Grafana's Loki datasource, makeTableFrames.ts, restated. */
export function makeTableFrames(instantFrames) {
  const byRefId = new Map();
  for (const frame of instantFrames.filter((f) => f.refId !== undefined)) {
    byRefId.set(frame.refId, [...(byRefId.get(frame.refId) ?? []), frame]);
  }
  return [...byRefId].map(([refId, frames]) => {
    const time = { name: "Time", config: {}, values: [], type: FieldType.time };
    const value = { name: `Value #${refId}`, config: {}, values: [], type: FieldType.number };
    const names = [...new Set(frames.flatMap((f) => f.fields.flatMap((x) => Object.keys(x.labels ?? {}))))].sort();
    const labels = names.map((name) => ({ name, config: { filterable: true }, values: [], type: FieldType.string }));
    for (const frame of frames) {
      const t = frame.fields.find((x) => x.type === FieldType.time);
      const v = frame.fields.find((x) => x.type === FieldType.number);
      if (!t || !v) continue;
      time.values.push(...t.values);
      value.values.push(...v.values);
      for (const f of labels) for (let i = 0; i < v.values.length; i++) f.values.push(v.labels?.[f.name] ?? "");
    }
    return { fields: [time, ...labels, value], refId, meta: { preferredVisualisationType: "table" },
      length: time.values.length };
  });
}

/** The Prometheus datasource's table path for instant answers of `format: table` targets
 *  (@grafana/prometheus result_transformer.ts, transformDFToTable, restated: that package
 *  pulls Grafana's whole UI): per refId one frame of Time, the labels in the order first
 *  met (each series' sorted), and `Value`, or `Value #<refId>` when the panel has several. */
export function prometheusTableFrames(answers) {
  const refIds = Object.keys(answers);
  return refIds.map((refId) => {
    const frames = backendFrames(refId, answers[refId]);
    const time = { name: "Time", config: {}, values: [], type: FieldType.time };
    const value = { name: refIds.length > 1 ? `Value #${refId}` : "Value", config: {}, values: [],
      type: FieldType.number };
    const labels = [];
    for (const frame of frames) {
      for (const name of Object.keys(frame.fields[1].labels ?? {}).sort()) {
        if (!labels.some((l) => l.name === name)) {
          labels.push({ name, config: { filterable: true }, values: [], type: FieldType.string });
        }
      }
    }
    for (const frame of frames) {
      time.values.push(...frame.fields[0].values);
      value.values.push(...frame.fields[1].values);
      for (const f of labels) f.values.push(frame.fields[1].labels?.[f.name] ?? "");
    }
    return { refId, fields: [time, ...labels, value], meta: { preferredVisualisationType: "rawPrometheus" },
      length: time.values.length };
  });
}

/** Grafana's backend on a Prometheus range (matrix) answer: one frame per series, its
 *  Value field named by the target's legend (pkg/promlib: displayNameFromDS). */
export function prometheusRangeFrames(refId, answer, legendFormat) {
  if (answer?.status !== "success" || answer.data?.resultType !== "matrix") {
    throw new Error(`${refId}: not a Prometheus matrix answer`);
  }
  const legend = (metric) => legendFormat.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name) => metric[name] ?? "");
  return answer.data.result.map((series) => ({
    refId,
    length: series.values.length,
    fields: [
      { name: "Time", type: FieldType.time, config: {}, values: series.values.map(([t]) => t * 1000) },
      { name: "Value", type: FieldType.number, labels: { ...series.metric },
        config: { displayNameFromDS: legend(series.metric) }, values: series.values.map(([, v]) => Number(v)) },
    ],
  }));
}

/** Steps 1+2 for a panel's instant targets: {refId: Loki answer} -> the datasource's frames. */
export function lokiInstantFrames(answers) {
  return makeTableFrames(Object.entries(answers).flatMap(([refId, answer]) => backendFrames(refId, answer)));
}

function fieldConfigRegistry() {
  const registry = new gd.FieldConfigOptionsRegistry();
  const all = () => true;
  const numeric = (field) => field.type === FieldType.number;
  const standard = [
    ["unit", gd.stringOverrideProcessor, all],
    ["min", gd.numberOverrideProcessor, numeric],
    ["max", gd.numberOverrideProcessor, numeric],
    ["decimals", gd.numberOverrideProcessor, numeric],
    ["displayName", gd.displayNameOverrideProcessor, all],
    ["color", gd.identityOverrideProcessor, all],
    ["noValue", gd.stringOverrideProcessor, all],
    ["links", gd.dataLinksOverrideProcessor, all],
    ["mappings", gd.valueMappingsOverrideProcessor, (field) => field.type !== FieldType.time],
    ["thresholds", gd.thresholdsOverrideProcessor, all],
  ];
  for (const [id, process, shouldApply] of standard) {
    registry.register({ id, path: id, name: id, process, shouldApply, settings: {}, override: () => null,
      editor: () => null });
  }
  // The table panel's own field options (custom.*) are passed through as they are.
  for (const id of ["width", "minWidth", "align", "inspect", "cellOptions", "filterable", "hidden"]) {
    registry.register({ id: `custom.${id}`, path: id, name: id, isCustom: true, process: gd.identityOverrideProcessor,
      shouldApply: all, settings: {}, override: () => null, editor: () => null });
  }
  return registry;
}

/** Steps 3+4: the panel's transformations and field config on the datasource's frames.
 *  Fails on a transformation Grafana's npm code does not have (transformDataFrame itself
 *  would silently skip it). */
export async function renderPanel(panel, frames) {
  const known = knownTransformations();
  for (const t of panel.transformations ?? []) {
    if (!known.has(t.id)) throw new Error(`${panel.title}: transformation ${t.id} is not in @grafana/data`);
  }
  const ctx = { interpolate: (s) => s };
  const transformed = await firstValueFrom(gd.transformDataFrame(panel.transformations ?? [], frames, ctx));
  const theme = gd.createTheme();
  const data = gd.applyFieldOverrides({
    data: transformed,
    fieldConfig: panel.fieldConfig ?? { defaults: {}, overrides: [] },
    fieldConfigRegistry: fieldConfigRegistry(),
    replaceVariables: (s) => s,
    theme,
    timeZone: "utc",
  });
  return data.map((frame) => ({
    columns: frame.fields.map((field) => ({
      name: gd.getFieldDisplayName(field, frame, data),
      type: field.type,
      unit: field.config.unit,
      decimals: field.config.decimals,
      config: field.config,
    })),
    rows: Array.from({ length: frame.length }, (_, i) =>
      frame.fields.map((field) => {
        const raw = field.values[i];
        const display = raw === null || raw === undefined ? undefined : field.display(raw);
        return { raw, text: display ? gd.formattedValueToString(display) : "", color: display?.color };
      }),
    ),
  }));
}

/** A stat panel's display values for frames, as Grafana computes them. */
function statValues(panel, frames) {
  const theme = gd.createTheme();
  const data = gd.applyFieldOverrides({
    data: frames, fieldConfig: panel.fieldConfig, fieldConfigRegistry: fieldConfigRegistry(),
    replaceVariables: (s) => s, theme, timeZone: "utc",
  });
  return gd.getFieldDisplayValues({ data, reduceOptions: panel.options.reduceOptions, fieldConfig: panel.fieldConfig,
    replaceVariables: (s) => s, theme, timeZone: "utc" });
}

/** What a stat panel shows for frames (the hint of an empty id is its noValue). */
export function statTexts(panel, frames) {
  return statValues(panel, frames).map((v) => gd.formattedValueToString(v.display));
}

/** What a stat panel shows, with the color it shows it in. */
export function statDisplays(panel, frames) {
  return statValues(panel, frames).map((v) => ({ text: gd.formattedValueToString(v.display), color: v.display.color }));
}

/** A named color as Grafana's default theme draws it. */
export function themeColor(name) {
  return gd.createTheme().visualization.getColorByName(name);
}

/** A rendered table as aligned text (README). */
export function tableText(table) {
  const head = table.columns.map((c) => c.name);
  const body = table.rows.map((r) => r.map((c) => c.text));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
