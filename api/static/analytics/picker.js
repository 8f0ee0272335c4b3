// A searchable multi-select ("Select accounts..."): a field that opens a list of checkboxes with a
// search box, instead of a list box that needs Ctrl/⌘-click. Plain DOM, no dependencies.
//
// picker({id, label, noun, load}) → {node, values(), focus()}; `load(q)` answers {values, truncated}
// (the caller's own values from GET /datasets/{id}/filter-values/{filter}).
import { h } from "./api.js";

const SEARCH_DELAY_MS = 250;

export function picker({ id, label, noun, load, describedBy }) {
  const chosen = new Set();
  let known = [];
  let truncated = false;
  let searchOnServer = false; // the first page was cut at its limit: searches ask the server

  const summary = h("span", { class: "picker-summary" }, `Select ${noun}...`);
  const trigger = h(
    "button",
    {
      type: "button",
      id,
      class: "picker-trigger",
      "aria-haspopup": "true",
      "aria-expanded": "false",
      "aria-describedby": describedBy,
    },
    summary,
    h("span", { class: "picker-caret", "aria-hidden": "true" }, "▼"),
  );
  const search = h("input", { type: "search", placeholder: `Search ${noun}`, "aria-label": `Search ${noun}` });
  const list = h("div", { class: "picker-list", role: "group", "aria-label": label });
  const note = h("p", { class: "hint picker-note" });
  const clear = h("button", { type: "button", class: "link" }, "Clear");
  const done = h("button", { type: "button" }, "Done");
  const popup = h(
    "div",
    { class: "picker-popup", hidden: true },
    search,
    list,
    note,
    h("div", { class: "picker-actions" }, clear, done),
  );
  const node = h("div", { class: "picker" }, trigger, popup);

  function renderSummary() {
    const values = [...chosen];
    summary.textContent = values.length === 0
      ? `Select ${noun}...`
      : values.length <= 2
        ? values.join(", ")
        : `${values.length} ${noun} selected`;
    summary.classList.toggle("placeholder", values.length === 0);
  }

  function renderList() {
    const q = search.value.trim().toLowerCase();
    const values = [...new Set([...chosen, ...known])].filter((v) => !q || v.toLowerCase().includes(q));
    list.replaceChildren(
      ...values.map((value) =>
        h(
          "label",
          { class: "choice picker-option" },
          h("input", {
            type: "checkbox",
            value,
            checked: chosen.has(value),
            onchange: (event) => {
              event.target.checked ? chosen.add(value) : chosen.delete(value);
              renderSummary();
            },
          }),
          value,
        ),
      ),
    );
    note.textContent = values.length === 0
      ? (q ? `No ${noun} match “${search.value.trim()}”.` : `You have no ${noun} in this dataset.`)
      : truncated ? `Showing the first ${known.length}: type to search for more.` : "";
  }

  async function fetchValues(q = "") {
    try {
      const answer = await load(q);
      known = answer.values;
      truncated = answer.truncated;
      if (truncated && !q) searchOnServer = true;
    } catch (error) {
      known = [];
      note.textContent = `Could not load your ${noun}: ${error.message}`;
      return;
    }
    renderList();
  }

  function open() {
    popup.hidden = false;
    trigger.setAttribute("aria-expanded", "true");
    search.focus();
  }

  function close({ focus = true } = {}) {
    if (popup.hidden) return;
    popup.hidden = true;
    trigger.setAttribute("aria-expanded", "false");
    if (focus) trigger.focus();
  }

  trigger.addEventListener("click", () => (popup.hidden ? open() : close()));
  done.addEventListener("click", () => close());
  clear.addEventListener("click", () => {
    chosen.clear();
    renderSummary();
    renderList();
    search.focus();
  });
  let debounce = null;
  search.addEventListener("input", () => {
    renderList(); // what is loaded narrows at once; the server is asked only when it has more
    if (!searchOnServer) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => fetchValues(search.value.trim()), SEARCH_DELAY_MS);
  });
  node.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !popup.hidden) {
      event.preventDefault(); // close the list, not the dialog around it
      event.stopPropagation();
      close();
    }
  });
  node.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !node.contains(event.relatedTarget)) close({ focus: false }); // tabbed away
  });
  const outside = (event) => {
    if (!node.isConnected) return document.removeEventListener("pointerdown", outside); // modal rebuilt
    if (!node.contains(event.target)) close({ focus: false });
  };
  document.addEventListener("pointerdown", outside);

  fetchValues();
  return { node, trigger, values: () => [...chosen] };
}
