/*
 * パスワード用ソフトウェアキーボード (SPEC B8, manual 別紙3).
 *
 * Every <button class="keyboard-toggle" data-keyboard-for="INPUT_ID"> opens an on-screen
 * keyboard right after the field block of that input. Only one keyboard exists at a time:
 * opening it for another input removes the old one, so the control ids (kbd-shift,
 * kbd-backspace, kbd-clear, kbd-close) are always unique on the page.
 *
 * Each character key is <button type="button" class="kbd-key" data-key="X">X</button>;
 * data-key always holds the character that a click types at that moment (it changes with
 * the 英大文字 shift key). No inline styles or handlers: the page runs under a strict CSP.
 *
 * Keyboard alone (WCAG 2.1.1): every key is a real button, so Tab reaches it and Enter or
 * Space presses it; opening the keyboard puts the focus on its first key, Escape or
 * [閉じる] closes it and gives the focus back to its toggle. Screen readers hear each key
 * by name (symbols by their Japanese names, upper-case letters as 大文字), and a polite
 * live region says how many characters the field holds after each key — never which.
 */
(function () {
  "use strict";

  document.documentElement.classList.remove("no-js");

  var DIGITS = "1234567890".split("");
  var LETTER_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"];
  var SYMBOLS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".split("");
  var SYMBOLS_PER_ROW = 11;

  // What a screen reader says for a symbol key (the glyph alone is often skipped).
  var SYMBOL_NAMES = {
    "!": "感嘆符", "\"": "二重引用符", "#": "シャープ", "$": "ドル記号", "%": "パーセント",
    "&": "アンパサンド", "'": "引用符", "(": "左かっこ", ")": "右かっこ", "*": "アスタリスク",
    "+": "プラス", ",": "カンマ", "-": "ハイフン", ".": "ピリオド", "/": "スラッシュ",
    ":": "コロン", ";": "セミコロン", "<": "小なり", "=": "イコール", ">": "大なり",
    "?": "疑問符", "@": "アットマーク", "[": "左角かっこ", "\\": "バックスラッシュ",
    "]": "右角かっこ", "^": "キャレット", "_": "アンダースコア", "`": "バッククォート",
    "{": "左波かっこ", "|": "縦線", "}": "右波かっこ", "~": "チルダ"
  };

  var current = null; // {input, toggle, panel, status, shift}

  function keyName(ch) {
    if (SYMBOL_NAMES.hasOwnProperty(ch)) {
      return SYMBOL_NAMES[ch] + " " + ch;
    }
    if (/[A-Z]/.test(ch)) {
      return "大文字 " + ch;
    }
    return ch;
  }

  function fieldName(input) {
    var label = document.querySelector('label[for="' + input.id + '"]');
    return label ? label.textContent.replace(/\s*必須\s*$/, "").trim() : "";
  }

  function fieldBlockOf(input) {
    return input.closest(".field") || input.parentNode;
  }

  function keyButton(ch) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "kbd-key";
    b.setAttribute("data-key", ch);
    b.setAttribute("aria-label", keyName(ch));
    b.textContent = ch;
    if (/[a-z]/.test(ch)) {
      b.setAttribute("data-letter", ch);
    }
    return b;
  }

  function controlButton(action, id, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary kbd-control";
    b.id = id;
    b.setAttribute("data-action", action);
    b.textContent = label;
    return b;
  }

  function row(keys, extraClass) {
    var r = document.createElement("div");
    r.className = "kbd-row" + (extraClass ? " " + extraClass : "");
    keys.forEach(function (k) {
      r.appendChild(typeof k === "string" ? keyButton(k) : k);
    });
    return r;
  }

  function applyShift(state) {
    var letters = state.panel.querySelectorAll("button.kbd-key[data-letter]");
    Array.prototype.forEach.call(letters, function (b) {
      var lower = b.getAttribute("data-letter");
      var ch = state.shift ? lower.toUpperCase() : lower;
      b.setAttribute("data-key", ch);
      b.textContent = ch;
      b.setAttribute("aria-label", keyName(ch));
    });
    var shiftKey = state.panel.querySelector('[data-action="shift"]');
    shiftKey.setAttribute("aria-pressed", state.shift ? "true" : "false");
  }

  function announceLength(state) {
    // Cleared first so that the same count twice (a full field) is announced again.
    state.status.textContent = "";
    state.status.textContent = "入力済み " + state.input.value.length + "文字";
  }

  function notifyInput(input) {
    var ev;
    try {
      ev = new Event("input", { bubbles: true });
    } catch (e) {
      ev = document.createEvent("Event");
      ev.initEvent("input", true, false);
    }
    input.dispatchEvent(ev);
  }

  function typeChar(state, ch) {
    var input = state.input;
    if (input.disabled || input.readOnly) {
      return;
    }
    var max = input.maxLength;
    if (typeof max === "number" && max > 0 && input.value.length >= max) {
      return;
    }
    input.value = input.value + ch;
    notifyInput(input);
  }


  function backspace(state) {
    var input = state.input;
    if (input.value.length > 0) {
      input.value = input.value.slice(0, -1);
      notifyInput(input);
    }
  }

  function clear(state) {
    if (state.input.value !== "") {
      state.input.value = "";
      notifyInput(state.input);
    }
  }

  function build(input, toggle) {
    var panel = document.createElement("div");
    panel.className = "kbd-panel";
    panel.id = "kbd-" + input.id;
    panel.setAttribute("role", "group");
    panel.setAttribute("data-keyboard-for", input.id);

    var title = document.createElement("p");
    title.className = "kbd-title";
    title.id = "kbd-title-" + input.id;
    var name = fieldName(input);
    title.textContent =
      "パスワード用ソフトウェアキーボード" + (name ? "（" + name + "）" : "");
    panel.appendChild(title);
    panel.setAttribute("aria-labelledby", title.id);

    var rows = document.createElement("div");
    rows.className = "kbd-rows";
    rows.appendChild(row(DIGITS));
    LETTER_ROWS.forEach(function (letters) {
      rows.appendChild(row(letters.split("")));
    });
    for (var i = 0; i < SYMBOLS.length; i += SYMBOLS_PER_ROW) {
      rows.appendChild(row(SYMBOLS.slice(i, i + SYMBOLS_PER_ROW)));
    }
    var shiftKey = controlButton("shift", "kbd-shift", "英大文字");
    shiftKey.setAttribute("aria-pressed", "false");
    rows.appendChild(
      row(
        [
          shiftKey,
          controlButton("backspace", "kbd-backspace", "1文字削除"),
          controlButton("clear", "kbd-clear", "クリア"),
          controlButton("close", "kbd-close", "閉じる"),
        ],
        "kbd-controls"
      )
    );
    panel.appendChild(rows);

    var status = document.createElement("p");
    status.className = "kbd-status";
    status.id = "kbd-status-" + input.id;
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    panel.appendChild(status);

    var state = { input: input, toggle: toggle, panel: panel, status: status, shift: false };

    panel.addEventListener("click", function (ev) {
      var target = ev.target.closest("button");
      if (!target || !panel.contains(target)) {
        return;
      }
      ev.preventDefault();
      var action = target.getAttribute("data-action");
      if (action === "shift") {
        state.shift = !state.shift;
        applyShift(state);
      } else if (action === "backspace") {
        backspace(state);
      } else if (action === "clear") {
        clear(state);
      } else if (action === "close") {
        close(true);
      } else if (target.classList.contains("kbd-key")) {
        typeChar(state, target.getAttribute("data-key"));
      }
      if (action === "backspace" || action === "clear" || target.classList.contains("kbd-key")) {
        announceLength(state);
      }
    });

    var block = fieldBlockOf(input);
    block.parentNode.insertBefore(panel, block.nextSibling);
    toggle.setAttribute("aria-controls", panel.id);
    return state;
  }

  function close(returnFocus) {
    if (!current) {
      return;
    }
    var state = current;
    current = null;
    if (state.panel.parentNode) {
      state.panel.parentNode.removeChild(state.panel);
    }
    state.toggle.setAttribute("aria-expanded", "false");
    state.toggle.removeAttribute("aria-controls");
    if (returnFocus) {
      state.toggle.focus();
    }
  }

  function open(input, toggle) {
    close(false);
    current = build(input, toggle);
    toggle.setAttribute("aria-expanded", "true");
    // Straight to the first key: a keyboard user types on, a mouse user sees no change.
    current.panel.querySelector("button.kbd-key").focus();
  }

  // Each toggle names the field it types into (several on one page must be told apart).
  Array.prototype.forEach.call(document.querySelectorAll("button.keyboard-toggle"), function (t) {
    var input = document.getElementById(t.getAttribute("data-keyboard-for"));
    var name = input ? fieldName(input) : "";
    if (name) {
      t.setAttribute("aria-label", t.textContent.trim() + "（" + name + "）");
    }
  });

  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest && ev.target.closest("button.keyboard-toggle");
    if (!toggle) {
      return;
    }
    ev.preventDefault();
    var input = document.getElementById(toggle.getAttribute("data-keyboard-for"));
    if (!input) {
      return;
    }
    if (current && current.input === input) {
      close(false);
    } else {
      open(input, toggle);
    }
  });

  document.addEventListener("keydown", function (ev) {
    if (current && (ev.key === "Escape" || ev.key === "Esc") && current.panel.contains(ev.target)) {
      close(true);
    }
  });
})();
