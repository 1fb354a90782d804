// The portal's small helps; every page works without them (the server checks everything).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // [登録する] is enabled only while 同意します is ticked (as in the original).
  for (const button of document.querySelectorAll("[data-needs-consent]")) {
    const box = document.getElementById(button.dataset.needsConsent);
    if (!box) continue;
    const sync = () => { button.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  }
  // A button that submits once: a second click while the answer is on its way does nothing
  // (the server would answer the same receipt anyway).
  for (const button of document.querySelectorAll("[data-once]")) {
    button.form.addEventListener("submit", () => {
      setTimeout(() => { button.disabled = true; }, 0);
    });
  }
});
