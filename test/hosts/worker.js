// Module worker: runs the probe on the browser bundle and posts the result back.
import * as dormant from "../dist/dormant.browser.js";
import { probeHost } from "./probe.js";
import { fixtureReader, probeTokenizers } from "./tokenizer-probe.js";

// A message is { modelUrl } for the model probe or { tokenizers: { fixturesUrl, names } } for the tokenizer probe.
self.onmessage = async (event) => {
  try {
    const version = navigator.userAgent.match(/Chrome\/(\d+)/)?.[1];
    const { modelUrl, tokenizers } = event.data;
    const result = tokenizers
      ? await probeTokenizers(dormant, fixtureReader(tokenizers.fixturesUrl), tokenizers.names, `chromium ${version} worker`)
      : await probeHost(dormant, modelUrl, `chromium ${version} worker`);
    self.postMessage({ result });
  } catch (error) {
    self.postMessage({ error: `${error?.name ?? "Error"}: ${error?.message ?? String(error)}` });
  }
};
