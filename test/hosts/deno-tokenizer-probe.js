// Deno host: runs the tokenizer probe on the Node/Deno package entry and prints one JSON line.
// Usage: deno run --no-remote --allow-read=<repo>,<shared> deno-tokenizer-probe.js FIXTURES_DIR NAME,NAME,...

import * as dormant from "../../dist/index.js";
import { probeTokenizers } from "./tokenizer-probe.js";

const [directory, names] = Deno.args;
const readFixture = (file) => Deno.readFile(`${directory}/${file}`);
const result = await probeTokenizers(dormant, readFixture, names.split(","), `deno ${Deno.version.deno}`);
console.log(JSON.stringify(result));
