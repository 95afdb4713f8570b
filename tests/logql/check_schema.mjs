// Type-checks provisioned dashboards against Grafana's own dashboard model types
// (@grafana/schema: Dashboard, Panel, and each panel plugin's Options / FieldConfig;
// @grafana/data: the transformations' option types) with the TypeScript compiler.
//
// Each dashboard becomes a TypeScript module in which every JSON object is an object
// literal checked with `satisfies <Grafana type>`: a misspelt or unknown key (excess
// property), a wrong value type or a value outside a union (e.g. a legend placement)
// is a compile error. Panel options are typed per plugin; override properties per id
// (`custom.x` against the plugin's FieldConfig, the rest against the standard FieldConfig).
//
// usage: node check_schema.mjs DASHBOARD.json...
// stdout: JSON [{"dashboard": path, "errors": ["line: message", ...]}]; exit 0 when it ran
// (verdicts are judged by the caller), 2 on bad input.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join } from "node:path";

const require = createRequire(import.meta.url);
const ts = require("typescript");
const HERE = new URL(".", import.meta.url).pathname;

const SCHEMA = "@grafana/schema/dist/esm/raw/composable";
const PLUGINS = {
  table: `${SCHEMA}/table/panelcfg/x/TablePanelCfg_types.gen`,
  stat: `${SCHEMA}/stat/panelcfg/x/StatPanelCfg_types.gen`,
  timeseries: `${SCHEMA}/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen`,
  text: `${SCHEMA}/text/panelcfg/x/TextPanelCfg_types.gen`,
  logs: `${SCHEMA}/logs/panelcfg/x/LogsPanelCfg_types.gen`,
  barchart: `${SCHEMA}/barchart/panelcfg/x/BarChartPanelCfg_types.gen`,
};
const WITH_FIELD_CONFIG = new Set(["table", "timeseries", "barchart"]);
const DATA_TYPES = "../node_modules/@grafana/data/dist/types/transformations/transformers";
const TRANSFORMS = {
  organize: ["organize", "OrganizeFieldsTransformerOptions"],
  merge: ["merge", "MergeTransformerOptions"],
  sortBy: ["sortBy", "SortByTransformerOptions"],
  calculateField: ["calculateField", "CalculateFieldTransformerOptions"],
};
// Transformations Grafana's app registers itself (not in @grafana/data): typed by `any`
// there too, so only their presence is checked (test_dashboards.py knows them by name).
const APP_TRANSFORMS = new Set(["extractFields"]);

const lit = (value) => JSON.stringify(value, null, 1);

function moduleFor(dash) {
  const out = [
    `import type { Dashboard, FieldConfig } from "@grafana/schema";`,
    ...Object.entries(PLUGINS).map(([k, path]) => `import type * as ${k}Plugin from "${path}";`),
    ...Object.values(TRANSFORMS).map(([file, type]) => `import type { ${type} } from "${DATA_TYPES}/${file}";`),
    // JSON holds an enum's values ("value"), TypeScript wants its members: Json<T> is T with
    // every string enum replaced by the union of its values (and so, recursively).
    "type Json<T> = T extends string ? `${T}` : T extends Array<infer U> ? Array<Json<U>> : " +
      "T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
    `export const dashboard = ${lit(dash)} satisfies Json<Dashboard>;`,
  ];
  (dash.panels ?? []).forEach((panel, i) => {
    const where = `panel ${panel.id} (${panel.title})`;
    const plugin = PLUGINS[panel.type] ? `${panel.type}Plugin` : null;
    if (!plugin) {
      out.push(`const unknown_${i}: "a panel type this check knows" = ${lit(panel.type)}; // ${where}`);
      return;
    }
    out.push(`// ${where}`);
    out.push(`export const options_${i} = ${lit(panel.options ?? {})} satisfies Json<${plugin}.Options>;`);
    const custom = panel.fieldConfig?.defaults?.custom;
    const pluginFieldConfig = WITH_FIELD_CONFIG.has(panel.type) ? `Partial<Json<${plugin}.FieldConfig>>` : "Record<string, never>";
    if (custom !== undefined) out.push(`export const custom_${i} = ${lit(custom)} satisfies ${pluginFieldConfig};`);
    (panel.fieldConfig?.overrides ?? []).forEach((o, j) => {
      o.properties.forEach((p, k) => {
        const [scope, key] = p.id.startsWith("custom.") ? [pluginFieldConfig, p.id.slice(7)] : ["Partial<Json<FieldConfig>>", p.id];
        out.push(`export const override_${i}_${j}_${k} = ${lit({ [key]: p.value })} satisfies ${scope};`);
      });
    });
    (panel.transformations ?? []).forEach((t, j) => {
      if (TRANSFORMS[t.id]) {
        out.push(`export const transform_${i}_${j} = ${lit(t.options)} satisfies Json<${TRANSFORMS[t.id][1]}>;`);
      } else if (!APP_TRANSFORMS.has(t.id)) {
        out.push(`const transform_${i}_${j}: "a transformation this check knows" = ${lit(t.id)};`);
      }
    });
  });
  return out.join("\n") + "\n";
}

function check(paths) {
  const dir = mkdtempSync(join(HERE, ".schema-check-"));
  try {
    const files = paths.map((path, n) => {
      const file = join(dir, `d${n}_${basename(path, ".json").replace(/\W/g, "_")}.ts`);
      writeFileSync(file, moduleFor(JSON.parse(readFileSync(path, "utf8"))));
      return file;
    });
    const program = ts.createProgram(files, {
      strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, types: [],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program);
    return paths.map((path, n) => ({
      dashboard: path,
      errors: diagnostics
        .filter((d) => d.file?.fileName === files[n] || (!d.file && n === 0))
        .map((d) => {
          const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
          if (!d.file) return text;
          const { line } = d.file.getLineAndCharacterOfPosition(d.start);
          const source = d.file.text.split("\n")[line].trim().slice(0, 120);
          return `line ${line + 1} (${source}): ${text}`;
        }),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const paths = process.argv.slice(2);
if (paths.length === 0) {
  process.stderr.write("usage: node check_schema.mjs DASHBOARD.json...\n");
  process.exit(2);
}
process.stdout.write(JSON.stringify(check(paths), null, 1) + "\n");
