// What the Node tests share: real `headroom serve` processes on port 0 with
// fresh data directories, the admin calls they set up with, and a runner
// that runs each test, reports it and stops every server whatever happens.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const processes = [];
const dirs = [];
const cleanups = [];

export function stopAll() {
  for (const p of processes) p.kill("SIGTERM");
  for (const fn of cleanups) fn();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

// Also called on the way out; for servers the test starts itself.
export function onStop(fn) {
  cleanups.push(fn);
}

for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (error) => {
    console.error(error);
    stopAll();
    process.exit(1);
  });
}

// Starts `headroom serve` with a new admin key and, when given, a config
// file's text; resolves to { url, adminKey } once it listens.
export async function startHeadroom(binary, { config, env = {} } = {}) {
  const data = mkdtempSync(join(tmpdir(), "headroom-node-"));
  dirs.push(data);
  const adminKey = execFileSync(binary, ["keygen"]).toString().trim();
  const args = ["serve", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "error"];
  if (config) {
    writeFileSync(join(data, "headroom.toml"), config);
    args.push("--config", join(data, "headroom.toml"));
  }
  const server = spawn(binary, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env, HEADROOM_ADMIN_KEY: adminKey },
  });
  processes.push(server);
  const url = await new Promise((resolve) => {
    let out = "";
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/[0-9.:]+)\n/);
      if (match) resolve(match[1]);
    });
  });
  return { url, adminKey };
}

// A control-API call with the server's admin key; fails the test unless 2xx.
export async function admin(server, method, path, body, headers = {}) {
  const response = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${server.adminKey}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

// Runs [name, fn] pairs in order, prints each, stops the servers and exits
// 0 only when all passed (or 1 after `timeoutMs`).
export async function runTests(tests, timeoutMs = 90000) {
  const timer = setTimeout(() => {
    console.error("timed out");
    stopAll();
    process.exit(1);
  }, timeoutMs);
  let failed = 0;
  for (const [name, fn] of tests) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (error) {
      failed++;
      console.log(`FAIL ${name}\n     ${error.stack ?? error}`);
    }
  }
  clearTimeout(timer);
  stopAll();
  console.log(`${tests.length - failed} of ${tests.length} passed`);
  process.exit(failed === 0 ? 0 : 1);
}
