// The OpenAI API as the official Node SDK (npm "openai") sees it: the real
// `headroom serve` on port 0 with its built-in model, a customer tenant
// with an inference key, and every route and error the SDK meets.
//   node openai_sdk.mjs PATH_TO_HEADROOM
import assert from "node:assert/strict";
import OpenAI from "openai";
import { admin as adminOf, runTests, startHeadroom } from "./harness.mjs";

// Each key may use 5,000 tokens a minute: enough for every test but the one
// that runs into it.
const server = await startHeadroom(process.argv[2], { config: "[gateway.key_limits]\ntokens_per_minute = 5000\n" });
const url = server.url;
const admin = (...args) => adminOf(server, ...args);

async function newTenant(name) {
  const tenant = await admin("POST", "/v1/tenants", { name });
  const key = await admin("POST", `/v1/tenants/${tenant.id}/keys`, { name: "sdk", scopes: ["inference", "billing"] });
  return { id: tenant.id, key: key.key, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: key.key, maxRetries: 0 }) };
}

async function expectError(promise, status, check = () => {}) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `an APIError, got ${error}`);
    assert.equal(error.status, status, error.message);
    check(error);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

// GET /v1/usage's rows once `total` tokens are rated (usage is durable
// before an answer ends; the ledger rates it a moment later), or after 5 s.
async function ratedUsage(key, groupBy, total) {
  let rows = [];
  for (let i = 0; i < 50; i++) {
    const response = await fetch(`${url}/v1/usage?group_by=${groupBy}`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(response.status, 200);
    rows = (await response.json()).data;
    if (rows.reduce((n, row) => n + row.quantity, 0) >= total) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return rows;
}

const tests = [];
const test = (name, fn) => tests.push([name, fn]);
const model = "stories260K";
let acme;

test("a tenant with an inference key", async () => {
  acme = await newTenant("acme");
});

test("402 until the tenant has credit", async () => {
  await expectError(acme.client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }] }), 402,
    (e) => assert.equal(e.code, "insufficient_funds"));
  await admin("POST", `/v1/tenants/${acme.id}/credits`, { amount: "10.00" }, { "idempotency-key": "sdk-test-credit" });
});

test("models: list and retrieve", async () => {
  const list = await acme.client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [model]);
  const one = await acme.client.models.retrieve(model);
  assert.equal(one.id, model);
  assert.equal(one.object, "model");
  await expectError(acme.client.models.retrieve("gpt-9"), 404, (e) => assert.equal(e.code, "model_not_found"));
});

test("chat completion, then the same streamed with usage", async () => {
  const request = { model, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 24, temperature: 0 };
  const whole = await acme.client.chat.completions.create(request);
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices.length, 1);
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.ok(whole.choices[0].message.content.length > 0);
  assert.equal(whole.choices[0].finish_reason, "length");
  assert.equal(whole.usage.completion_tokens, 24);
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 24);

  const stream = await acme.client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  let finish = null;
  let role = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      text += choice.delta.content ?? "";
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content, "greedy: streamed text equals the whole answer");
  assert.equal(finish, "length");
  assert.deepEqual(usage, whole.usage);
});

test("text completion continues the story", async () => {
  const c = await acme.client.completions.create({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0, logprobs: 2 });
  assert.equal(c.object, "text_completion");
  assert.ok(c.choices[0].text.startsWith(", there was a little girl"), c.choices[0].text);
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 12);
  assert.equal(lp.tokens.join(""), c.choices[0].text);
  assert.ok(lp.token_logprobs.every((x) => x <= 0));
  assert.equal(Object.keys(lp.top_logprobs[0]).length, 2);
  assert.equal(lp.text_offset[1], lp.tokens[0].length);
});

test("chat log-probabilities", async () => {
  const c = await acme.client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 5,
    temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = c.choices[0].logprobs.content;
  assert.equal(content.length, 5);
  assert.equal(content[0].top_logprobs.length, 3);
  assert.ok(content[0].logprob <= 0);
  assert.equal(content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob, true);
});

test("n choices, stop sequences, seeds", async () => {
  const c = await acme.client.chat.completions.create({
    model, messages: [{ role: "user", content: "A story" }], n: 3, max_tokens: 30, temperature: 1, seed: 7, stop: ["."],
  });
  assert.equal(c.choices.length, 3);
  for (const choice of c.choices) assert.ok(!choice.message.content.includes("."), choice.message.content);
  const again = await acme.client.chat.completions.create({
    model, messages: [{ role: "user", content: "A story" }], n: 3, max_tokens: 30, temperature: 1, seed: 7, stop: ["."],
  });
  assert.deepEqual(again.choices.map((x) => x.message.content), c.choices.map((x) => x.message.content));
});

test("errors in OpenAI's shape: 400, 401, 404", async () => {
  await expectError(acme.client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], temperature: 5 }),
    400, (e) => assert.equal(e.param, "temperature"));
  await expectError(acme.client.chat.completions.create({ model, messages: [] }), 400, (e) => assert.equal(e.param, "messages"));
  await expectError(acme.client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }), 404,
    (e) => assert.equal(e.code, "model_not_found"));
  await expectError(acme.client.embeddings.create({ model, input: "x" }), 400);
  const stranger = new OpenAI({ baseURL: `${url}/v1`, apiKey: "hr_notakey", maxRetries: 0 });
  await expectError(stranger.models.list(), 401, (e) => assert.equal(e.type, "authentication_error"));
});

test("429 past the key's tokens per minute, with OpenAI's headers", async () => {
  const limited = await newTenant("limited");
  await admin("POST", `/v1/tenants/${limited.id}/credits`, { amount: "1.00" }, { "idempotency-key": "sdk-test-limited" });
  // Each reserves its max_tokens; the stop sequence keeps the answers short
  // (and the test quick under sanitizers).
  const ask = (max_tokens, n = 1) => limited.client.chat.completions.create({
    model, messages: [{ role: "user", content: "Hi" }], max_tokens, n, temperature: 0, stop: ["."] }).withResponse();
  // stories260K's context is 2,048 tokens: a choice reserves its prompt and
  // at most the rest of the context.
  const { data, response } = await ask(2000);
  assert.equal(response.headers.get("x-ratelimit-limit-tokens"), "5000");
  assert.equal(Number(response.headers.get("x-ratelimit-remaining-tokens")), 5000 - data.usage.prompt_tokens - 2000);
  assert.ok(response.headers.get("x-ratelimit-limit-requests"), "the tenant's requests per minute");
  assert.ok(response.headers.get("x-ratelimit-reset-tokens").endsWith("s"));
  // Three choices of 2,000 can never fit a minute of 5,000.
  await expectError(ask(2000, 3), 429, (e) => {
    assert.equal(e.code, "rate_limit_exceeded");
    assert.match(e.message, /Request too large/);
  });
  // Tokens spent stay spent (only a reservation's unused part comes back), so
  // long prompts use up the minute; then a request reserving more than is
  // left is refused and told when to retry. (Six requests at once used to
  // test this, but on a loaded machine they may run one after another, each
  // refunded before the next: nothing then is refused.)
  const story = "Once upon a time there was a little dog who liked to run in the park. ".repeat(12);
  let remaining = 5000;
  for (let i = 0; i < 20 && remaining >= 1000; i++) {
    const { response } = await limited.client.chat.completions.create({
      model, messages: [{ role: "user", content: story }], max_tokens: 1 }).withResponse();
    remaining = Number(response.headers.get("x-ratelimit-remaining-tokens"));
  }
  assert.ok(remaining < 1000, `${remaining} tokens left of the minute's 5,000`);
  await expectError(ask(2000), 429, (e) => {
    assert.equal(e.code, "rate_limit_exceeded");
    assert.ok(Number(e.headers["retry-after"]) >= 1, JSON.stringify(e.headers));
    assert.equal(e.headers["x-ratelimit-limit-tokens"], "5000");
  });
});

test("concurrent requests racing for the last credit never overspend it", async () => {
  const thrifty = await newTenant("thrifty");
  // Each request holds its prompt and 1,000 output tokens ($0.0001 at $0.10 per million): $0.00025 covers two.
  await admin("POST", `/v1/tenants/${thrifty.id}/credits`, { amount: "0.00025" }, { "idempotency-key": "sdk-test-thrifty" });
  const results = await Promise.allSettled([1, 2, 3, 4, 5, 6].map(() => thrifty.client.chat.completions.create({
    model, messages: [{ role: "user", content: "Hi" }], max_tokens: 1000, temperature: 0 })));
  const refused = results.filter((r) => r.status === "rejected");
  assert.ok(refused.length >= 4, `${refused.length} of 6 refused`);
  for (const r of refused) assert.equal(r.reason.status, 402, String(r.reason));
  const response = await fetch(`${url}/v1/balance`, { headers: { authorization: `Bearer ${thrifty.key}` } });
  const balance = await response.json();
  assert.ok(Number(balance.balance) >= 0, JSON.stringify(balance));
});

test("a client that leaves mid-stream is still billed for what it got", async () => {
  const quitter = await newTenant("quitter");
  await admin("POST", `/v1/tenants/${quitter.id}/credits`, { amount: "1.00" }, { "idempotency-key": "sdk-test-quitter" });
  const controller = new AbortController();
  const stream = await quitter.client.completions.create(
    { model, prompt: "Once upon a time", max_tokens: 1500, temperature: 0.8, seed: 1, stream: true },
    { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) chunks++;
      if (chunks === 5) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    assert.ok(error.name === "AbortError" || error instanceof OpenAI.APIUserAbortError, String(error));
  }
  assert.equal(chunks, 5);
  // The usage lands once the engine has seen the client go.
  let tokens = 0;
  for (let i = 0; i < 50 && tokens === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const response = await fetch(`${url}/v1/usage?group_by=model`, { headers: { authorization: `Bearer ${quitter.key}` } });
    const report = await response.json();
    tokens = report.data.reduce((n, row) => n + row.quantity, 0);
  }
  const prompt = 5;  // bos + "Once upon a time"
  assert.ok(tokens - prompt >= 5, `metered ${tokens} tokens`);
  assert.ok(tokens - prompt < 1500, `generation was cancelled (${tokens} tokens)`);
});

test("usage is metered under the key that spent it", async () => {
  const team = await newTenant("team");
  await admin("POST", `/v1/tenants/${team.id}/credits`, { amount: "1.00" }, { "idempotency-key": "sdk-test-team" });
  const second = await admin("POST", `/v1/tenants/${team.id}/keys`, { name: "second", scopes: ["inference", "billing"] });
  const secondClient = new OpenAI({ baseURL: `${url}/v1`, apiKey: second.key, maxRetries: 0 });
  const keys = await admin("GET", `/v1/tenants/${team.id}/keys`);
  const first = keys.data.find((k) => k.name === "sdk");
  assert.ok(first && second.id, "both keys have ids");
  const a = await team.client.completions.create({ model, prompt: "Once upon a time", max_tokens: 7, seed: 1 });
  const b = await secondClient.completions.create({ model, prompt: "Lily", max_tokens: 3, seed: 1 });
  const rows = await ratedUsage(team.key, "key", a.usage.total_tokens + b.usage.total_tokens);
  const byKey = {};
  for (const row of rows) byKey[row.group] = (byKey[row.group] ?? 0) + row.quantity;
  assert.deepEqual(byKey, { [first.id]: a.usage.total_tokens, [second.id]: b.usage.total_tokens });
});

test("a model deployed at run time is served at once; removed mid-stream, its streams end and are billed", async () => {
  const made = await admin("POST", "/v1/deployments",
    { name: "tiny-2", file: "builtin:stories260K", input_price: "1.00", output_price: "2.00" });
  assert.equal(made.origin, "api");
  const user = await newTenant("streamer");
  await admin("POST", `/v1/tenants/${user.id}/credits`, { amount: "1.00" }, { "idempotency-key": "sdk-test-streamer" });
  assert.ok((await user.client.models.list()).data.some((m) => m.id === "tiny-2"));
  const stream = await user.client.completions.create({
    model: "tiny-2", prompt: "Once upon a time", max_tokens: 400, n: 8, temperature: 0.8, seed: 2, stream: true,
    stream_options: { include_usage: true } });
  let chunks = 0;
  let usage = null;
  let removal = null;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.text) chunks++;
    if (chunk.usage) usage = chunk.usage;
    if (chunks === 1 && !removal) {
      removal = fetch(`${url}/v1/deployments/tiny-2`, { method: "DELETE", headers: { authorization: `Bearer ${server.adminKey}` } });
    }
  }
  assert.equal((await removal).status, 200);
  // However far it got, the stream ended with its usage, and that is what was billed.
  assert.ok(usage && usage.completion_tokens >= 1, `usage ${JSON.stringify(usage)}`);
  const rows = await ratedUsage(user.key, "model", usage.total_tokens);
  assert.deepEqual(rows.map((row) => [row.group, row.quantity]), [["tiny-2", usage.total_tokens]]);
  await expectError(user.client.completions.create({ model: "tiny-2", prompt: "x" }), 404);
});

await runTests(tests);
