// The page's one way to the API: same origin, the user's bearer JWT, JSON in and out.
//
// Sign-in: the page never mints tokens. It reads one from the URL fragment (`#token=<JWT>`, as in the
// link `make run` prints, or as a host application opens the page), keeps it in sessionStorage (this
// tab only) and removes it from the address bar; or from a token the user pastes.

const TOKEN_KEY = "exportEngine.token";

export function adoptTokenFromUrl() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

export function currentToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's expiry (Date) when it can be read, without checking the signature (the API does). */
export function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload));
    return typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null;
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && Array.isArray(body.errors) && body.errors) || [];
  }
}

export class SignInNeeded extends Error {}

export async function api(path, { method = "GET", body } = {}) {
  const token = currentToken();
  if (!token) throw new SignInNeeded("You are not signed in.");
  const expiry = tokenExpiry(token);
  if (expiry && expiry.getTime() <= Date.now()) {
    throw new SignInNeeded(`Your sign-in expired on ${expiry.toLocaleString()}.`);
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, { detail: `The export service cannot be reached (${error.message}). Try again.` });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    throw new SignInNeeded(`Your sign-in is not valid any more (${(data && data.detail) || "401"}).`);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// ---- tiny DOM helper: text is always set as text, never parsed as HTML ----
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- formatting ----
export const formatCount = (n) => Number(n).toLocaleString("en-US");

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** "24 hours", "1 hour", "59 minutes", "2 days": from now until `iso`, to the nearest unit (a link
 * signed for 24 hours a second ago still reads "24 hours", not "23"). */
export function formatTimeLeft(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  if (!(seconds > 0)) return "now";
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const hours = Math.round(seconds / 3600);
  if (hours >= 48) return plural(Math.round(seconds / 86400), "day");
  if (hours >= 1 && seconds >= 3570) return plural(hours, "hour"); // from 59½ minutes: "1 hour"
  if (seconds >= 60) return plural(Math.round(seconds / 60), "minute");
  return plural(seconds, "second");
}

export const formatDateTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export const FORMAT_LABELS = { csv: "CSV", parquet: "Parquet", jsonl: "JSON Lines", json: "JSON", xlsx: "Excel" };

export function formatLabel(format, compression) {
  const name = FORMAT_LABELS[format] || format.toUpperCase();
  return compression ? `${name} (${compression})` : name;
}

// ---- the sign-in notice shared by both pages ----
export function showSignIn(container, message, onSignedIn) {
  container.replaceChildren(
    h("h2", {}, "Sign in needed"),
    h("p", {}, message),
    h(
      "p",
      {},
      "Open this page from your application, or in development from the link that ",
      h("code", {}, "make run"),
      " prints. You can also paste an access token (a JWT for the API):",
    ),
    h(
      "form",
      {
        class: "signin-form",
        onsubmit: (event) => {
          event.preventDefault();
          const value = event.target.elements.token.value.trim();
          if (!value) return;
          sessionStorage.setItem(TOKEN_KEY, value);
          container.hidden = true;
          onSignedIn();
        },
      },
      h("label", { for: "token-input" }, "Access token"),
      h("input", { id: "token-input", name: "token", type: "password", autocomplete: "off", required: true }),
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    ),
  );
  container.hidden = false;
  container.querySelector("input").focus();
}
