// /analytics/exports: the caller's exports from `GET /export`, newest first, paged by its cursor.
import {
  SignInNeeded,
  adoptTokenFromUrl,
  api,
  formatBytes,
  formatCount,
  formatDateTime,
  formatLabel,
  h,
  showSignIn,
} from "./api.js";

const PAGE_SIZE = 20;
const $ = (selector) => document.querySelector(selector);

let datasetNames = {};
let nextCursor = null;

adoptTokenFromUrl();
$("#reload").addEventListener("click", () => load());
$("#status-filter").addEventListener("change", () => load());
$("#load-more").addEventListener("click", () => load({ more: true }));
load();

function problem(error) {
  if (error instanceof SignInNeeded) {
    $("#page-status").textContent = "";
    showSignIn($("#signin"), error.message, () => load());
  } else {
    $("#page-status").textContent = `Could not load your exports: ${error.message}`;
  }
}

async function load({ more = false } = {}) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const status = $("#status-filter").value;
  if (status) query.set("status", status);
  if (more && nextCursor) query.set("cursor", nextCursor);
  if (!more) $("#page-status").textContent = "Loading your exports…";
  let page;
  try {
    if (!Object.keys(datasetNames).length) {
      const catalog = await api("/datasets");
      datasetNames = Object.fromEntries(catalog.datasets.map((d) => [d.id, d.name]));
    }
    page = await api(`/export?${query}`);
  } catch (error) {
    problem(error);
    return;
  }
  nextCursor = page.next_cursor || null;
  const rows = page.items.map(row);
  if (more) $("#history-rows").append(...rows);
  else $("#history-rows").replaceChildren(...rows);
  const count = $("#history-rows").children.length;
  $("#history").hidden = count === 0;
  $("#page-status").textContent = count === 0 ? "No exports yet: start one from the Datasets page." : "";
  $("#load-more").hidden = !nextCursor;
}

function row(item) {
  const cell = (label, content, attrs = {}) => h("td", { "data-label": label, ...attrs }, content);
  return h(
    "tr",
    { "data-reference-id": item.reference_id },
    cell("Created", formatDateTime(item.created_at)),
    cell("Dataset", datasetNames[item.table_name] || item.table_name),
    cell("Range", [h("span", { class: "nowrap" }, item.date_from), " – ", h("span", { class: "nowrap" }, item.date_to)]),
    cell("Format", formatLabel(item.format, item.compression)),
    cell(
      "Status",
      h("span", { class: `status status-${item.status}` }, item.status),
      {},
    ),
    cell("Rows", item.row_count != null ? formatCount(item.row_count) : item.rows_written != null ? `${formatCount(item.rows_written)}…` : "", { class: "num" }),
    cell("Size", formatBytes(item.file_size_bytes), { class: "num" }),
    cell("Completed", formatDateTime(item.completed_at)),
    cell("Actions", actions(item)),
  );
}

function actions(item) {
  const label = `${datasetNames[item.table_name] || item.table_name} ${item.date_from} – ${item.date_to}`;
  const buttons = [];
  if (item.status === "COMPLETED" && item.download_url) {
    buttons.push(
      h(
        "a",
        { class: "button primary", href: item.download_url, target: "_blank", rel: "noopener", "aria-label": `Download ${label}` },
        `Download ${formatLabel(item.format, item.compression)}`,
      ),
    );
  }
  if (item.status === "PENDING" || item.status === "RUNNING") {
    buttons.push(h("button", { type: "button", class: "danger", "aria-label": `Cancel ${label}`, onclick: () => remove(item, false) }, "Cancel"));
  }
  if (item.status === "COMPLETED") {
    buttons.push(h("button", { type: "button", class: "danger", "aria-label": `Delete the file of ${label}`, onclick: () => remove(item, true) }, "Delete file"));
  }
  const extra = item.status === "FAILED" && item.error ? h("p", { class: "error-text" }, item.error) : null;
  return [h("div", { class: "row-actions" }, buttons), extra];
}

async function remove(item, isFile) {
  if (isFile && !window.confirm("Delete this file? Its download links stop working.")) return;
  try {
    await api(`/export/${item.reference_id}`, { method: "DELETE" });
  } catch (error) {
    if (error instanceof SignInNeeded) return problem(error);
    $("#page-status").textContent = `Could not ${isFile ? "delete" : "cancel"} the export: ${error.message}`;
  }
  await load();
}
