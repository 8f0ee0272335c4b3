// Telegram on the page: see whether a chat is linked, connect one, disconnect it.
//
// Connecting uses the API's one-time link (POST /notifications/telegram/link → https://t.me/<bot>?start=<code>):
// the user opens it in Telegram and presses Start; the page then polls GET /notifications/telegram until
// the chat is linked. When Telegram is off on the server the panel stays hidden.
import { ApiError, api, h } from "./api.js";

const POLL_MS = 3000;

export const telegram = { enabled: false, linked: false };

let container = null;
let timer = null;

export async function loadTelegram(node) {
  container = node;
  await refreshStatus();
}

async function refreshStatus() {
  try {
    const status = await api("/notifications/telegram");
    telegram.enabled = status.enabled;
    telegram.linked = status.linked;
  } catch {
    telegram.enabled = false; // the page works without it; the export itself is unaffected
  }
  render();
}

function render(extra = null) {
  if (!telegram.enabled) {
    container.hidden = true;
    return;
  }
  container.hidden = false;
  if (telegram.linked) {
    container.replaceChildren(
      h(
        "p",
        { class: "telegram-state" },
        h("span", { class: "success", "aria-hidden": "true" }, "✓ "),
        "Telegram connected: you will get a message when an export is ready.",
      ),
      h("button", { type: "button", onclick: disconnect }, "Disconnect Telegram"),
    );
    return;
  }
  container.replaceChildren(
    h("p", { class: "telegram-state" }, "Get a Telegram message when an export is ready."),
    extra || h("button", { type: "button", class: "primary", onclick: connect }, "Connect Telegram"),
  );
}

async function connect() {
  let link;
  try {
    link = await api("/notifications/telegram/link", { method: "POST" });
  } catch (error) {
    render(
      h(
        "div",
        {},
        h("p", { class: "form-error", role: "alert" }, `Could not connect Telegram: ${error.message}`),
        h("button", { type: "button", onclick: connect }, "Try again"),
      ),
    );
    return;
  }
  const expires = new Date(link.expires_at);
  const until = expires.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  render(
    h(
      "div",
      { class: "telegram-connect" },
      h("p", {}, "Open this link in Telegram and press ", h("strong", {}, "Start"), ":"),
      h(
        "p",
        {},
        h("a", { id: "telegram-link", class: "button primary", href: link.link, target: "_blank", rel: "noopener" }, "Open Telegram"),
      ),
      h("p", { class: "hint", role: "status" }, `Waiting for Telegram… The link works until ${until}.`),
      h("button", { type: "button", class: "link", onclick: stopWaiting }, "Cancel"),
    ),
  );
  const poll = async () => {
    timer = null;
    try {
      const status = await api("/notifications/telegram");
      telegram.enabled = status.enabled;
      telegram.linked = status.linked;
    } catch {
      // a failed poll is retried at the next tick
    }
    if (telegram.linked || !telegram.enabled) return render();
    if (Date.now() >= expires.getTime()) {
      return render(
        h(
          "p",
          { class: "hint" },
          "The link expired before Telegram confirmed it. ",
          h("button", { type: "button", class: "link", onclick: connect }, "Try again"),
        ),
      );
    }
    timer = setTimeout(poll, POLL_MS);
  };
  timer = setTimeout(poll, POLL_MS);
}

function stopWaiting() {
  if (timer) clearTimeout(timer);
  timer = null;
  render();
}

async function disconnect() {
  try {
    await api("/notifications/telegram/link", { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      render(h("p", { class: "form-error", role: "alert" }, `Could not disconnect: ${error.message}`));
      return;
    }
  }
  telegram.linked = false;
  render();
}
