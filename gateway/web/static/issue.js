/*
 * 電子証明書発行 (⑥ → ⑦ 発行中) and 電子証明書発行結果 (⑧ automatic download).
 *
 * On the issue page: when #issue-form is submitted, show the "電子証明書発行中" section
 * instead of the form and disable the button (the submit itself goes ahead).
 * On the result page: start the download of a#download[data-autostart="1"] once, about
 * 300 ms after the page loads; a reload of the page never starts it again (sessionStorage).
 * The visible link always works without JavaScript.
 */
(function () {
  "use strict";

  document.documentElement.classList.remove("no-js");

  var ISSUING_TITLE = "電子証明書発行中";
  var AUTOSTART_DELAY_MS = 300;
  var STORAGE_PREFIX = "cert-download-started:";

  function siteName() {
    var fromBody = document.body && document.body.getAttribute("data-site-name");
    if (fromBody) {
      return fromBody;
    }
    var i = document.title.indexOf(" | ");
    return i >= 0 ? document.title.slice(i + 3) : document.title;
  }

  function setHidden(el, hidden) {
    if (el) {
      el.classList.toggle("hidden", hidden);
    }
  }

  /* ---- ⑥ 発行 → ⑦ 発行中 ---- */

  function setUpIssueForm(form) {
    var section = document.getElementById("issue-section");
    var issuing = document.getElementById("issuing");
    var button = document.getElementById("btn-issue");
    var originalTitle = document.title;
    var submitting = false;

    form.addEventListener("submit", function (ev) {
      if (submitting) {
        // A second submit (double click, Enter) must not issue a second certificate.
        ev.preventDefault();
        return;
      }
      submitting = true;
      setHidden(section, true);
      setHidden(document.getElementById("error"), true);
      setHidden(document.getElementById("notice"), true);
      setHidden(issuing, false);
      document.title = ISSUING_TITLE + " | " + siteName();
      if (button) {
        // Disabling inside the submit handler does not cancel this submission.
        button.disabled = true;
      }
    });

    // Coming back with the browser's back button may restore this page from the
    // back/forward cache in its "issuing" state: show the form again.
    window.addEventListener("pageshow", function (ev) {
      if (ev.persisted && submitting) {
        submitting = false;
        setHidden(section, false);
        setHidden(issuing, true);
        document.title = originalTitle;
        if (button) {
          button.disabled = false;
        }
      }
    });
  }

  /* ---- ⑧ 発行結果: automatic download, once ---- */

  function setUpAutoDownload(link) {
    var name =
      link.getAttribute("data-file-name") ||
      link.getAttribute("download") ||
      link.getAttribute("href");
    var key = STORAGE_PREFIX + name;
    try {
      if (window.sessionStorage.getItem(key)) {
        return;
      }
      window.sessionStorage.setItem(key, String(Date.now()));
    } catch (e) {
      // No storage: a reload could not be told apart, so leave the download to the link.
      return;
    }
    window.setTimeout(function () {
      link.click();
    }, AUTOSTART_DELAY_MS);
  }

  function init() {
    var form = document.getElementById("issue-form");
    if (form) {
      setUpIssueForm(form);
    }
    var link = document.getElementById("download");
    if (link && link.getAttribute("data-autostart") === "1") {
      setUpAutoDownload(link);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
