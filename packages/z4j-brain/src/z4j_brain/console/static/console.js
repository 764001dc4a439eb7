// z4j console: live updates over Server-Sent Events and the schedule form's preview.
// Loaded as a file (the CSP allows no inline script). Fragments come from the server already
// escaped; nothing here builds markup from data.
"use strict";

(function () {
  function isFragment(answer) {
    return answer.headers.get("X-Z4J-Fragment") === "1";
  }

  function refresh(element) {
    if (element.dataset.busy === "1") {
      element.dataset.again = "1";
      return;
    }
    element.dataset.busy = "1";
    fetch(element.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        // Only a fragment the console served as one goes into the page (never an API answer
        // or another page that a crafted link resolved to).
        if (answer.status === 200 && !answer.redirected && isFragment(answer)) {
          return answer.text().then(function (html) { element.innerHTML = html; });
        }
        return null;
      })
      .catch(function () { return null; })
      .then(function () {
        element.dataset.busy = "0";
        if (element.dataset.again === "1") {
          element.dataset.again = "0";
          refresh(element);
        }
      });
  }

  function startLive() {
    var targets = document.querySelectorAll("[data-live]");
    if (!targets.length || !window.EventSource) {
      return;
    }
    var status = document.getElementById("live-status");
    var source = new EventSource("/live");
    source.addEventListener("changed", function () {
      targets.forEach(refresh);
    });
    source.addEventListener("open", function () {
      // What was stored between rendering the page and connecting is fetched once now.
      targets.forEach(refresh);
      if (status) { status.textContent = "Updates live."; }
    });
    source.addEventListener("error", function () {
      if (!status) { return; }
      status.textContent = source.readyState === EventSource.CLOSED
        ? "Live updates stopped (logged out?): reload the page."
        : "Live updates paused; reconnecting.";
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function startPreview() {
    var form = document.querySelector("form[data-preview]");
    if (!form) {
      return;
    }
    var target = document.getElementById(form.dataset.previewTarget);
    var timer = null;
    var asked = 0;
    function update() {
      var fields = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (key !== "csrf" && typeof value === "string") { fields.append(key, value); }
      });
      var mine = ++asked;
      fetch(form.dataset.preview + "?" + fields.toString(), { credentials: "same-origin" })
        .then(function (answer) {
          return answer.status === 200 && !answer.redirected && isFragment(answer)
            ? answer.text() : null;
        })
        .then(function (html) {
          if (html !== null && mine === asked) { target.innerHTML = html; }
        })
        .catch(function () { return null; });
    }
    function soon() {
      clearTimeout(timer);
      timer = setTimeout(update, 200);
    }
    form.addEventListener("input", soon);
    form.addEventListener("change", soon);
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLive();
    startPreview();
  });
})();
