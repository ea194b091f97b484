// Offscreen document: owns the Web Worker that runs dormant, because a service worker cannot
// start workers. It relays generate requests from the service worker to the worker and back.

const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
/** Pending requests by id: the sendResponse callback of each runtime message. */
const pending = new Map();
let nextId = 1;

worker.onmessage = (event) => {
  const { id, ...reply } = event.data;
  pending.get(id)?.(reply);
  pending.delete(id);
};

worker.onerror = (event) => {
  // A worker that fails to load (a missing file, a syntax error) fails every pending request.
  const error = `worker failed: ${event.message || "the script did not load"}`;
  for (const sendResponse of pending.values()) sendResponse({ error });
  pending.clear();
};

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  // Only the service worker sends requests here. Messages from content scripts have sender.tab set.
  if (message?.target !== "offscreen" || sender.id !== chrome.runtime.id || sender.tab) return false;
  const id = nextId++;
  pending.set(id, sendResponse);
  worker.postMessage({ id, text: message.text, maxTokens: message.maxTokens });
  return true;
});
