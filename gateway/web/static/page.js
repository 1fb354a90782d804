/*
 * Every screen: an error the server put on the page (#error, role="alert") takes the focus
 * when the page loads, so that a screen reader reads it at once and a keyboard user starts
 * from it (an alert already in the page at load is not announced by every reader). When the
 * error is about one field (data-field="ID"), that field is marked invalid and described by
 * the error, so that it is announced again when the user gets there (WCAG 3.3.1).
 */
(function () {
  "use strict";

  document.documentElement.classList.remove("no-js");

  var error = document.getElementById("error");
  if (error) {
    var field = document.getElementById(error.getAttribute("data-field") || "");
    if (field && field.tagName === "INPUT") {
      field.setAttribute("aria-invalid", "true");
      var described = (field.getAttribute("aria-describedby") || "").split(/\s+/);
      field.setAttribute("aria-describedby", ["error"].concat(described).join(" ").trim());
    }
    error.setAttribute("tabindex", "-1");
    error.focus();
  }
})();
