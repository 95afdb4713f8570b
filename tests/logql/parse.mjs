// Parse LogQL expressions with Grafana's own grammar (@grafana/lezer-logql,
// the parser Grafana's Loki query editor uses) and report syntax errors.
//
// stdin:  JSON array of strings (LogQL expressions)
// stdout: JSON array, one entry per input, in order:
//         {"expr": str, "ok": bool, "errors": [{"from": int, "to": int, "context": str}]}
// exit:   0 when the input was read and parsed (whatever the verdicts),
//         2 on bad input. Verdicts are judged by the caller (pytest).
//
// A parse "error" is any node whose type isError (lezer's error-recovery
// "⚠" node): lezer never throws on bad input, it recovers and inserts these.
import { parser } from "@grafana/lezer-logql";

function readStdin() {
  return new Promise((resolve, reject) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => (data += chunk));
    process.stdin.on("end", () => resolve(data));
    process.stdin.on("error", reject);
  });
}

function check(expr) {
  const tree = parser.parse(expr);
  const errors = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({
          from: node.from,
          to: node.to,
          context: expr.slice(Math.max(0, node.from - 15), node.to + 15),
        });
      }
    },
  });
  // Guard against an empty/degenerate parse being reported as fine.
  const topNode = tree.topNode;
  if (expr.trim() === "" || topNode.firstChild === null) {
    errors.push({ from: 0, to: expr.length, context: "empty parse tree" });
  }
  return { expr, ok: errors.length === 0, errors };
}

const raw = await readStdin();
let exprs;
try {
  exprs = JSON.parse(raw);
} catch (err) {
  process.stderr.write(`parse.mjs: stdin is not JSON: ${err.message}\n`);
  process.exit(2);
}
if (!Array.isArray(exprs) || !exprs.every((e) => typeof e === "string")) {
  process.stderr.write("parse.mjs: stdin must be a JSON array of strings\n");
  process.exit(2);
}
process.stdout.write(JSON.stringify(exprs.map(check)) + "\n");
