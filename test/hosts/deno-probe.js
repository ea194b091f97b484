// Deno host: runs the probe on the Node/Deno package entry and prints one JSON line.
// Usage: deno run --no-remote --allow-read=<repo>,<shared> deno-probe.js MODEL_PATH

import * as dormant from "../../dist/index.js";
import { probeHost } from "./probe.js";

const result = await probeHost(dormant, Deno.args[0], `deno ${Deno.version.deno}`);
console.log(JSON.stringify(result));
