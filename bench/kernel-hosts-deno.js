// Deno side of bench/kernel-hosts.mjs: runs measureKernels on the test modules and prints one JSON line.
// Usage: deno run --no-remote --allow-read=<repo>/build,<repo>/bench kernel-hosts-deno.js OPTIONS_JSON

import { measureKernels } from "./kernel-hosts-core.js";

const exactBytes = await Deno.readFile(new URL("../build/dormant-test.wasm", import.meta.url));
const relaxedBytes = await Deno.readFile(new URL("../build/dormant-test-relaxed.wasm", import.meta.url));
const result = await measureKernels(exactBytes, relaxedBytes, JSON.parse(Deno.args[0]));
console.log(JSON.stringify({ host: `deno ${Deno.version.deno}`, engine: `V8 ${Deno.version.v8}`, ...result }));
