// Validates `headroom serve`'s /openapi.json against the OpenAPI 3 JSON
// schema with an independent validator. Starts the real binary on port 0.
//   node openapi_validate.mjs PATH_TO_HEADROOM
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";

const binary = process.argv[2];
const data = mkdtempSync(join(tmpdir(), "headroom-openapi-"));
const server = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "warning"], {
  stdio: ["ignore", "pipe", "inherit"],
});
const stop = () => { server.kill("SIGTERM"); rmSync(data, { recursive: true, force: true }); };
const timer = setTimeout(() => { console.error("headroom serve did not start"); stop(); process.exit(1); }, 20000);

let out = "";
server.stdout.on("data", async (chunk) => {
  out += chunk;
  const match = out.match(/listening on (http:\/\/[0-9.:]+)\n/);
  if (!match) return;
  clearTimeout(timer);
  server.stdout.removeAllListeners("data");
  try {
    const response = await fetch(`${match[1]}/openapi.json`);
    const document = await response.json();
    const validator = new Validator();
    const result = await validator.validate(document);
    if (!result.valid) {
      console.error("invalid OpenAPI document:", JSON.stringify(result.errors, null, 2));
      process.exitCode = 1;
    } else {
      const routes = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
      console.log(`OpenAPI ${document.openapi}: valid, ${routes} operations`);
    }
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  } finally {
    stop();
  }
});
