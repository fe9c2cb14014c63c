// An external model: `headroom serve` B serves "remote" from replicas that
// are OpenAI-compatible servers: a broken one (it answers health checks but
// drops every completion before a byte of answer) and a second
// `headroom serve`, A, with its built-in stories260K. Through the official
// SDK against B: the answers equal A's own, streamed or whole; B meters the
// tokens A counted; a request the broken replica drops is retried on A; a
// model with no reachable replica is a 502.
//   node openai_upstream.mjs PATH_TO_HEADROOM
import assert from "node:assert/strict";
import { createServer } from "node:http";
import OpenAI from "openai";
import { admin, onStop, runTests, startHeadroom } from "./harness.mjs";

const binary = process.argv[2];

// Answers the health check, drops every completion unanswered.
let dropped = 0;
const broken = createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"object":"list","data":[]}');
  } else {
    dropped++;
    req.socket.destroy();
  }
});
await new Promise((resolve) => broken.listen(0, "127.0.0.1", resolve));
onStop(() => broken.close());
const brokenUrl = `http://127.0.0.1:${broken.address().port}/v1`;

const a = await startHeadroom(binary);
const b = await startHeadroom(binary, { config: `
[models.remote]
upstreams = ["${brokenUrl}", "${a.url}/v1"]
upstream_model = "stories260K"
upstream_api_key_env = "UPSTREAM_KEY"
input_price = "0.50"
output_price = "1.00"

[models.nowhere]
upstreams = ["http://127.0.0.1:1/v1"]
`, env: { UPSTREAM_KEY: a.adminKey } });

const tenant = await admin(b, "POST", "/v1/tenants", { name: "acme" });
const key = await admin(b, "POST", `/v1/tenants/${tenant.id}/keys`, { name: "sdk", scopes: ["inference", "billing"] });
await admin(b, "POST", `/v1/tenants/${tenant.id}/credits`, { amount: "5.00" }, { "idempotency-key": "upstream-credit" });
const viaB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: key.key, maxRetries: 0 });
const directA = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: a.adminKey, maxRetries: 0 });

const tests = [];
const test = (name, fn) => tests.push([name, fn]);
const request = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 20, temperature: 0 };

test("the remote model is listed", async () => {
  const list = await viaB.models.list();
  assert.deepEqual(list.data.map((m) => m.id).sort(), ["nowhere", "remote"]);
});

test("a whole answer equals A's own, retried past the broken replica", async () => {
  const droppedBefore = dropped;
  const remote = await viaB.chat.completions.create({ model: "remote", ...request });
  const local = await directA.chat.completions.create({ model: "stories260K", ...request });
  assert.equal(dropped, droppedBefore + 1, "the broken replica was tried first and dropped it");
  assert.equal(remote.model, "remote");
  assert.equal(remote.choices[0].message.content, local.choices[0].message.content);
  assert.deepEqual(remote.usage, local.usage);
});

test("a streamed answer equals A's own, with A's usage", async () => {
  const stream = await viaB.chat.completions.create({ model: "remote", ...request, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.model, "remote");
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) text += choice.delta.content ?? "";
  }
  const local = await directA.chat.completions.create({ model: "stories260K", ...request });
  assert.equal(text, local.choices[0].message.content);
  assert.deepEqual(usage, local.usage);
});

test("B meters the tokens A counted, at B's prices", async () => {
  // Recorded before each answer ended; rated a moment later.
  let row;
  for (let i = 0; i < 50 && !(row?.events === 4); i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    const response = await fetch(`${b.url}/v1/usage?group_by=model`, { headers: { authorization: `Bearer ${key.key}` } });
    row = (await response.json()).data.find((r) => r.group === "remote");
  }
  assert.ok(row, "no usage of remote");
  const local = await directA.chat.completions.create({ model: "stories260K", ...request });
  assert.equal(row.quantity, 2 * local.usage.total_tokens);
  assert.equal(row.events, 4);
});

test("no reachable replica: 502", async () => {
  try {
    await viaB.chat.completions.create({ model: "nowhere", ...request });
    assert.fail("expected 502");
  } catch (error) {
    assert.equal(error.status, 502, String(error));
    assert.equal(error.code, "upstream_unavailable");
  }
});

await runTests(tests);
