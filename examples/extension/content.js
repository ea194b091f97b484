// Content script, injected by the service worker on each trigger (so it may run more than once
// in a page). It reads the selection, shows progress, and inserts the continuation right after
// the selection: a <span id="dormant-continuation"> in page text, or new text in a text field.

if (!globalThis.dormantContentScript) {
  globalThis.dormantContentScript = true;

  /** Insertion point of the pending continuation: { range } in page text, { field, end } in an input or textarea. */
  let target;
  let hideTimer;

  /** Returns the selected text and remembers where it ends. */
  const readSelection = () => {
    const field = document.activeElement;
    if ((field instanceof HTMLTextAreaElement || field instanceof HTMLInputElement) && field.selectionStart !== field.selectionEnd) {
      target = { field, end: field.selectionEnd };
      return field.value.slice(field.selectionStart, field.selectionEnd);
    }
    const selection = getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) {
      target = undefined;
      return "";
    }
    target = { range: selection.getRangeAt(selection.rangeCount - 1).cloneRange() };
    return selection.toString();
  };

  /** Shows one status line in a small overlay at the bottom right of the page. */
  const showStatus = (state, text) => {
    let status = document.getElementById("dormant-status");
    if (!status) {
      status = document.createElement("div");
      status.id = "dormant-status";
      status.setAttribute("role", "status");
      Object.assign(status.style, {
        position: "fixed", right: "16px", bottom: "16px", zIndex: "2147483647", maxWidth: "420px",
        padding: "8px 12px", borderRadius: "6px", font: "13px/1.4 system-ui, sans-serif",
        color: "#fff", boxShadow: "0 2px 8px rgba(0, 0, 0, 0.3)",
      });
      document.documentElement.append(status);
    }
    status.dataset.state = state;
    status.style.background = state === "error" ? "#b3261e" : "#3c4043";
    status.style.display = "block";
    status.textContent = text;
    clearTimeout(hideTimer);
    if (state === "done") hideTimer = setTimeout(() => (status.style.display = "none"), 6000);
  };

  /** Inserts the continuation where the selection ended. */
  const insertContinuation = (continuation, title) => {
    if (target?.field) {
      const { field, end } = target;
      field.setRangeText(continuation, end, end, "select");
      return;
    }
    // Only the newest continuation carries the id, so the id stays unique in the page.
    document.getElementById("dormant-continuation")?.removeAttribute("id");
    const span = document.createElement("span");
    span.id = "dormant-continuation";
    span.className = "dormant-continuation";
    span.title = title;
    span.textContent = continuation;
    Object.assign(span.style, { background: "#e6f4ea", color: "#0d652d", borderRadius: "3px" });
    const end = target.range.cloneRange();
    end.collapse(false);
    end.insertNode(span);
  };

  chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
    if (sender.id !== chrome.runtime.id) return false;
    if (message.type === "dormant.begin") {
      const text = readSelection();
      if (text) showStatus("running", "dormant: continuing the selection…");
      sendResponse({ text });
    } else if (message.type === "dormant.show") {
      if (target) insertContinuation(message.continuation, `${message.model}, ${message.tokens} tokens, greedy`);
      showStatus("done", `dormant: ${message.tokens} tokens from ${message.model} in ${message.milliseconds} ms (${message.kernels})`);
      sendResponse({});
    } else if (message.type === "dormant.fail") {
      showStatus("error", `dormant: ${message.error}`);
      sendResponse({});
    }
    return false;
  });
}
