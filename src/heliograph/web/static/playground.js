// Heliograph Playground: a provider key typed for a column belongs to the upstream it was
// typed for. Choosing another upstream clears it, and key_for tells the server which
// upstream that is (the server refuses a key sent with another upstream than its key_for).
// The model field suggests the models the chosen upstream served lately.
(function () {
  "use strict";

  function bindColumn(column) {
    const target = column.querySelector("[data-role=upstream]");
    const key = column.querySelector("[data-role=key]");
    const keyFor = column.querySelector("[data-role=key-for]");
    const label = column.querySelector("[data-role=key-upstream]");
    const model = column.querySelector("input[name$=_model]");
    if (!target || !key || !keyFor) return;
    target.addEventListener("change", function () {
      if (keyFor.value !== target.value) key.value = "";
      keyFor.value = target.value;
      if (label) label.textContent = target.value;
      if (model) model.setAttribute("list", "playground-models-" + target.value);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-key-column]").forEach(bindColumn);
  });
})();
