// Service worker. Each trigger (toolbar button, Alt+Shift+D, context menu) is a user gesture that
// grants activeTab. The worker then injects content.js into that tab, reads the selection, has
// the offscreen document continue it, and sends the continuation back to content.js.

/** Tokens generated per continuation. */
const MAX_TOKENS = 48;
const MENU_ID = "dormant-continue";
const OFFSCREEN_URL = chrome.runtime.getURL("offscreen.html");

chrome.runtime.onInstalled.addListener(() => {
  chrome.contextMenus.create({ id: MENU_ID, title: "Continue with dormant", contexts: ["selection"] });
});

chrome.contextMenus.onClicked.addListener((info, tab) => {
  if (info.menuItemId === MENU_ID && tab?.id !== undefined) continueSelection(tab.id, info.frameId ?? 0);
});

// Fires for the toolbar button and for the _execute_action command (Alt+Shift+D).
chrome.action.onClicked.addListener((tab) => {
  if (tab.id !== undefined) continueSelection(tab.id, 0);
});

// Message API for the extension's own pages and content scripts:
// { type: "dormant.continue", text, maxTokens? } → { continuation, ... } or { error }.
chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id || message?.type !== "dormant.continue") return false;
  continueText(message.text, { maxTokens: message.maxTokens }).then(sendResponse, (error) => sendResponse({ error: describe(error) }));
  return true;
});

/**
 * Continues the selection of one frame of a tab and shows the result there. Returns what was
 * shown: { selection, continuation, ... } or { error }.
 */
async function continueSelection(tabId, frameId) {
  const target = { tabId, frameIds: [frameId] };
  try {
    await chrome.scripting.executeScript({ target, files: ["content.js"] });
  } catch (error) {
    // Chrome blocks extension scripts on pages such as chrome:// and the Web Store, so the
    // status box cannot show this error there.
    console.warn(`dormant: cannot run in tab ${tabId}, frame ${frameId}: ${describe(error)}`);
    return { error: `cannot run on this page: ${describe(error)}` };
  }
  const send = (message) => chrome.tabs.sendMessage(tabId, message, { frameId });

  const { text } = await send({ type: "dormant.begin" });
  if (!text) {
    const error = "no text is selected: select some text, then try again";
    await send({ type: "dormant.fail", error });
    return { error };
  }
  try {
    const result = await continueText(text, { maxTokens: MAX_TOKENS });
    await send({ type: "dormant.show", ...result });
    return { selection: text, ...result };
  } catch (error) {
    console.warn(`dormant: continuing the selection in tab ${tabId} failed: ${describe(error)}`);
    await send({ type: "dormant.fail", error: describe(error) });
    return { error: describe(error) };
  }
}

/** Continues `text` greedily in the offscreen document's worker. Rejects with the worker's error. */
async function continueText(text, { maxTokens = MAX_TOKENS } = {}) {
  if (typeof text !== "string" || text.length === 0) throw new Error("text is empty, expected a non-empty string");
  await ensureOffscreenDocument();
  const reply = await chrome.runtime.sendMessage({ target: "offscreen", type: "dormant.generate", text, maxTokens });
  if (reply === undefined) throw new Error("the offscreen document sent no reply");
  if (reply.error) throw new Error(reply.error);
  return reply;
}

let creating;

/** Creates the offscreen document unless it exists. Concurrent calls share one creation. */
async function ensureOffscreenDocument() {
  const existing = await chrome.runtime.getContexts({ contextTypes: ["OFFSCREEN_DOCUMENT"], documentUrls: [OFFSCREEN_URL] });
  if (existing.length > 0) return;
  creating ??= chrome.offscreen.createDocument({
    url: OFFSCREEN_URL,
    reasons: [chrome.offscreen.Reason.WORKERS],
    justification: "runs the language model in a Web Worker",
  }).finally(() => (creating = undefined));
  await creating;
}

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
