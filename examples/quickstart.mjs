// JavaScript quick-start (Node 18+ or a browser): the skills over fetch, an image sent as a file,
// and a streamed answer read from server-sent events.
//
//   dreamforge sample photo.png
//   DREAMFORGE_API_KEY=df_... node examples/quickstart.mjs photo.png
import { readFile } from "node:fs/promises";

const url = process.env.DREAMFORGE_URL ?? "http://127.0.0.1:8080";
const headers = { Authorization: `Bearer ${process.env.DREAMFORGE_API_KEY}` };
const png = await readFile(process.argv[2] ?? "photo.png");

async function call(path, init) {
  const reply = await fetch(url + path, { method: "POST", ...init, headers: { ...headers, ...init.headers } });
  const body = await reply.json();
  if (!reply.ok) throw new Error(`${reply.status}: ${body.error.message}`);
  return body;
}

// JSON, the image as a data URL (Moondream's request shape)
const imageUrl = `data:image/png;base64,${png.toString("base64")}`;
const query = await call("/v1/query", {
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ image_url: imageUrl, question: "What colour is the circle?" }),
});
console.log("query:", query.answer, `(${Math.round(query.latency_ms)} ms, request ${query.request_id})`);

// a multipart form with the file, as a browser <input type="file"> would send it
const form = new FormData();
form.append("image", new Blob([png], { type: "image/png" }), "photo.png");
form.append("object", "orange circle");
console.log("detect:", JSON.stringify((await call("/v1/detect", { body: form })).objects));

// the raw file as the body, the other fields in the query string
const point = await call(`/v1/point?object=${encodeURIComponent("orange circle")}`, {
  headers: { "Content-Type": "image/png" },
  body: png,
});
console.log("point:", JSON.stringify(point.points));

// streamed: `data: {"chunk": ...}` lines until `{"completed": true}`
const stream = await fetch(url + "/v1/caption", {
  method: "POST",
  headers: { ...headers, "Content-Type": "application/json" },
  body: JSON.stringify({ image_url: imageUrl, length: "short", stream: true }),
});
let text = "";
let buffered = "";
for await (const bytes of stream.body) {
  buffered += new TextDecoder().decode(bytes, { stream: true });
  const lines = buffered.split("\n");
  buffered = lines.pop();
  for (const line of lines.filter((l) => l.startsWith("data: "))) {
    const event = JSON.parse(line.slice(6));
    if (event.chunk) text += event.chunk;
  }
}
console.log("caption:", text.trim());
