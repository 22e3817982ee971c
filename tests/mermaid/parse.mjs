// Parse Mermaid flowcharts with Mermaid itself and report what it read.
// Input (stdin): a JSON array of flowchart texts. Output (stdout): a JSON array with, for
// each text, {error} or {vertices: [[id, drawn text, classes]], edges: [[from, to, drawn
// text, stroke, style]], subgraphs: [[id, title, nodes]]}. The drawn text is what the
// browser shows: Mermaid's entity codes decoded and <br> as a line break.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

function drawn(text) {
  // Mermaid's own decodeEntities, then the browser's HTML decoding of the label.
  const html = text
    .replace(/ﬂ°°/g, "&#")
    .replace(/ﬂ°/g, "&")
    .replace(/¶ß/g, ";")
    .replace(/<br\s*\/?>/gi, "\n");
  const holder = dom.window.document.createElement("div");
  holder.innerHTML = html;
  return holder.textContent;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const texts = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const text of texts) {
  try {
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const db = diagram.db;
    const vertices = [...db.getVertices().values()].map((v) => [v.id, drawn(v.text), v.classes]);
    const edges = db.getEdges().map((e) => [e.start, e.end, drawn(e.text), e.stroke, e.style ?? null]);
    const subgraphs = db.getSubGraphs().map((s) => [s.id, s.title, s.nodes]);
    results.push({ vertices, edges, subgraphs });
  } catch (error) {
    results.push({ error: String(error?.message ?? error).slice(0, 500) });
  }
}
process.stdout.write(JSON.stringify(results));
