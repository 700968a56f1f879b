// Heliograph dataset page: sends the chosen JSONL or CSV file as the request body (as the
// API takes it, so the server streams it without a multipart parser) with the session's
// CSRF token in a header, and shows the report: added, skipped, and each bad line.
// Server text is only ever put into the page with textContent (never innerHTML).
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  const out = document.getElementById("upload-report");
  if (!form || !out) return;

  function line(text, cls) {
    const p = document.createElement("p");
    if (cls) p.className = cls;
    p.textContent = text;
    return p;
  }

  function show(nodes) {
    out.replaceChildren(...nodes);
    out.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector('input[type="file"]');
    const file = input && input.files && input.files[0];
    if (!file) return;
    const csv = /\.csv$/i.test(file.name) || file.type === "text/csv";
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    show([line("Uploading " + file.name + "…", "muted")]);
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        body: file,
        credentials: "same-origin",
        headers: {
          "Content-Type": csv ? "text/csv" : "application/x-ndjson",
          "X-CSRF-Token": form.dataset.csrf || "",
        },
      });
      const doc = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        const message = (doc.error && doc.error.message) || "Upload failed (" + resp.status + ").";
        show([line(message, "notice err")]);
        return;
      }
      const nodes = [
        line("Added " + doc.added + " items, skipped " + doc.skipped + " duplicates, " +
          doc.error_count + " bad lines.", doc.error_count ? "notice warn" : "notice ok"),
      ];
      if (doc.errors && doc.errors.length) {
        const list = document.createElement("ul");
        list.className = "upload-errors";
        for (const e of doc.errors) {
          const li = document.createElement("li");
          li.textContent = "Line " + e.line + ": " + e.reason;
          list.appendChild(li);
        }
        nodes.push(list);
      }
      const reload = document.createElement("a");
      reload.href = window.location.pathname;
      reload.textContent = "Show the items";
      nodes.push(reload);
      show(nodes);
    } catch (err) {
      show([line("Upload failed: " + err, "notice err")]);
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
