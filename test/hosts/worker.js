// Module worker: runs the probe on the browser bundle and posts the result back.
import * as dormant from "../dist/dormant.browser.js";
import { probeHost } from "./probe.js";

self.onmessage = async (event) => {
  try {
    const version = navigator.userAgent.match(/Chrome\/(\d+)/)?.[1];
    const result = await probeHost(dormant, event.data.modelUrl, `chromium ${version} worker`);
    self.postMessage({ result });
  } catch (error) {
    self.postMessage({ error: `${error?.name ?? "Error"}: ${error?.message ?? String(error)}` });
  }
};
