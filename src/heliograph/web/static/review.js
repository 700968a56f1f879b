// Heliograph review queue: keyboard shortcuts for scoring one output after another.
// 1-5 pick a score, p and f pass or fail, j and k go to the next and previous output,
// Enter saves (the form posts as usual, with its CSRF token). Keys typed into the comment
// box stay text (except Ctrl/Cmd+Enter, which saves).
"use strict";

(function () {
  const form = document.getElementById("review-form");
  if (!form) return;

  function go(id) {
    const link = document.getElementById(id);
    if (link && link.getAttribute("href")) window.location.assign(link.getAttribute("href"));
  }

  function choose(value) {
    const input = form.querySelector('input[name="score"][value="' + value + '"]');
    if (input) {
      input.checked = true;
      input.focus();
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.defaultPrevented) return;
    const typing = event.target instanceof HTMLTextAreaElement ||
      (event.target instanceof HTMLInputElement && event.target.type === "text");
    if (event.key === "Enter" && (!typing || event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey) return;
    if (/^[1-5]$/.test(event.key)) choose(event.key);
    else if (event.key === "p") choose("pass");
    else if (event.key === "f") choose("fail");
    else if (event.key === "j") go("review-next");
    else if (event.key === "k") go("review-prev");
    else return;
    event.preventDefault();
  });
})();
