// Heliograph dashboard script: the timezone picker.
// Choosing a zone reloads the same page with ?tz= changed and everything else kept; the
// browser's own zone is offered first when the list does not hold it.
"use strict";

(function () {
  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function setUp(select) {
    const own = browserZone();
    if (own && !Array.from(select.options).some((o) => o.value === own)) {
      const option = document.createElement("option");
      option.value = own;
      option.textContent = own + " (this browser)";
      select.insertBefore(option, select.options[1] || null);
    }
    select.addEventListener("change", function () {
      const url = new URL(window.location.href);
      if (select.value === "UTC") url.searchParams.delete("tz");
      else url.searchParams.set("tz", select.value);
      url.searchParams.delete("cursor");
      window.location.assign(url.pathname + url.search);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    for (const select of document.querySelectorAll("select[data-tz-picker]")) setUp(select);
  });
})();
