/* Pishkhan website chat. Plain JavaScript, no dependencies, no build step.
   Embedded with <script src="https://HOST/channels/webchat/NAME/widget.js" async></script>.
   The panel lives in a Shadow DOM: the page's CSS cannot reach it and it cannot reach the page.
   Everything from the server is shown with textContent: a message never renders as HTML.
   The frames it speaks are described in docs/channels/webchat.md. */
(function () {
  "use strict";
  var SETTINGS = /*SETTINGS*/null;
  if (!SETTINGS) return;
  var FLAG = "__pishkhanWebchat_" + SETTINGS.channel;
  if (window[FLAG]) return;
  window[FLAG] = true;

  var script = document.currentScript;
  var base = (script && script.src ? script.src : "").replace(/\/widget\.js(\?.*)?$/, "");
  var wsUrl = base.replace(/^http/, "ws") + "/ws";
  var KEY = "pishkhan.webchat." + SETTINGS.channel + ".";

  var TEXT = {
    fa: {
      title: "گفت‌وگو با ما", open: "گفت‌وگو", close: "بستن", send: "ارسال", attach: "پیوست",
      placeholder: "پیام خود را بنویسید…", name: "نام", email: "ایمیل",
      start: "شروع گفت‌وگو", skip: "فعلاً نه", contactIntro: "پیش از شروع، خودتان را معرفی کنید.",
      away: "الان کسی برای پاسخ در دسترس نیست. ایمیل خود را بگذارید تا پاسخ را برایتان بفرستیم.",
      saveEmail: "ثبت ایمیل", typing: " در حال نوشتن…", someone: "همکار ما",
      sending: "در حال ارسال", sent: "ارسال شد", read: "خوانده شد", failed: "ارسال نشد",
      resolved: "این گفت‌وگو بسته شد. اگر سؤال دیگری دارید بنویسید.",
      reopened: "گفت‌وگو دوباره باز شد.", offline: "اتصال قطع است؛ دوباره وصل می‌شویم…",
      tooBig: "پرونده بزرگ‌تر از حد مجاز است.", badEmail: "ایمیل درست نیست.",
      bot: "دستیار خودکار"
    },
    en: {
      title: "Chat with us", open: "Chat", close: "Close", send: "Send", attach: "Attach",
      placeholder: "Write a message…", name: "Name", email: "Email",
      start: "Start chatting", skip: "Not now", contactIntro: "Before we start, who are you?",
      away: "Nobody can answer right now. Leave your email and the answer will follow by email.",
      saveEmail: "Save email", typing: " is typing…", someone: "Our agent",
      sending: "sending", sent: "sent", read: "read", failed: "not sent",
      resolved: "This conversation was closed. Write again if you need anything else.",
      reopened: "The conversation is open again.", offline: "Offline; reconnecting…",
      tooBig: "The file is larger than allowed.", badEmail: "That email does not look right.",
      bot: "Assistant"
    }
  };
  var htmlLang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
  var lang = SETTINGS.language === "auto" ? (htmlLang.indexOf("fa") === 0 ? "fa" : "en") : SETTINGS.language;
  var T = TEXT[lang];
  var rtl = lang === "fa";

  function load(name, fallback) {
    try { var v = window.localStorage.getItem(KEY + name); return v ? JSON.parse(v) : fallback; }
    catch (e) { return fallback; }
  }
  function save(name, value) {
    try { window.localStorage.setItem(KEY + name, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  function newId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return "c" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  var state = {
    token: load("token", null),
    contact: load("contact", { name: "", email: "", done: false }),
    outbox: load("outbox", []),      // messages not yet acknowledged: resent after a reconnect
    lastId: 0,                        // newest server message id seen on this page
    readClient: null,
    available: true,
    ws: null, attempt: 0, timer: null, ready: false, open: load("open", false), unseen: 0
  };
  var shown = {};       // key ("s<id>" or "c<client id>") -> element

  /* ---- The panel, in a Shadow DOM ---- */
  var host = document.createElement("div");
  host.id = "pishkhan-webchat-" + SETTINGS.channel;
  // Inline and !important: the page's own rules (even `div{display:none!important}`) lose.
  var place = { all: "initial", display: "block", position: "fixed", bottom: "20px", "z-index": "2147483000" };
  place[rtl ? "left" : "right"] = "20px";
  Object.keys(place).forEach(function (name) { host.style.setProperty(name, place[name], "important"); });
  var root = host.attachShadow({ mode: "open" });
  var color = SETTINGS.color || "#1f6feb";
  var font = rtl ? "Vazirmatn, Vazir, Sahel, Tahoma, 'Segoe UI', 'Noto Sans Arabic', sans-serif"
                 : "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial}",
    ".root{font-family:" + font + ";font-size:14px;line-height:1.6;color:#1b1f24}",
    ".root *{box-sizing:border-box;font-family:inherit}",
    ".launcher{width:56px;height:56px;border-radius:50%;border:0;background:" + color + ";color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);position:relative;display:flex;align-items:center;justify-content:center}",
    ".launcher svg{width:28px;height:28px}",
    ".file svg{width:14px;height:14px;vertical-align:middle}",
    ".attach svg{width:18px;height:18px;vertical-align:middle}",
    ".badge{position:absolute;top:-4px;inset-inline-end:-4px;background:#d1242f;color:#fff;border-radius:10px;font-size:12px;padding:0 6px}",
    ".panel{position:absolute;bottom:70px;" + (rtl ? "left:0" : "right:0") + ";width:360px;max-width:calc(100vw - 40px);height:520px;max-height:calc(100vh - 110px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}",
    ".panel[hidden]{display:none}",
    ".head{background:" + color + ";color:#fff;padding:12px 14px;display:flex;align-items:center;justify-content:space-between;font-weight:600}",
    ".head button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}",
    ".notice{background:#fff8c5;padding:8px 12px;font-size:13px}",
    ".notice[hidden],.form[hidden],.typing[hidden],.badge[hidden]{display:none}",
    ".messages{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px;background:#f6f8fa}",
    ".msg{max-width:80%;padding:7px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word;unicode-bidi:plaintext}",
    ".msg.visitor{align-self:flex-end;background:" + color + ";color:#fff}",
    ".msg.agent,.msg.bot{align-self:flex-start;background:#fff;border:1px solid #d0d7de}",
    ".msg.system{align-self:center;background:none;color:#57606a;font-size:12px;text-align:center}",
    ".author{display:block;font-size:11px;opacity:.75}",
    ".meta{display:block;font-size:11px;opacity:.8;text-align:end}",
    ".file{display:block;font-size:12px;opacity:.9;color:inherit}",
    "a.file{text-decoration:underline;cursor:pointer}",
    ".thumb{display:block;max-width:160px;max-height:120px;border-radius:6px;margin-top:4px;background:#fff}",
    ".replies{display:flex;flex-wrap:wrap;gap:6px;align-self:flex-start}",
    ".replies button{border:1px solid " + color + ";color:" + color + ";background:#fff;border-radius:14px;padding:3px 10px;cursor:pointer}",
    ".typing{padding:2px 12px;font-size:12px;color:#57606a}",
    ".form{padding:10px 12px;display:flex;flex-direction:column;gap:6px;border-top:1px solid #d0d7de}",
    ".form input{padding:7px;border:1px solid #d0d7de;border-radius:6px}",
    ".row{display:flex;gap:6px}",
    ".composer{display:flex;gap:6px;padding:8px;border-top:1px solid #d0d7de;align-items:flex-end}",
    ".composer textarea{flex:1;resize:none;height:40px;max-height:120px;padding:8px;border:1px solid #d0d7de;border-radius:8px}",
    "button.primary{background:" + color + ";color:#fff;border:0;border-radius:8px;padding:8px 12px;cursor:pointer}",
    "button.plain{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:8px 10px;cursor:pointer}"
  ].join("\n");
  root.appendChild(style);

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function icon(d) {   // drawn, not an emoji: many systems have no emoji font
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "24"); svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d); path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2"); path.setAttribute("stroke-linecap", "round"); path.setAttribute("stroke-linejoin", "round");
    svg.appendChild(path);
    return svg;
  }
  var CHAT = "M21 12a8 8 0 0 1-11.6 7.1L4 20l1.1-4.6A8 8 0 1 1 21 12z";
  var CLIP = "M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9";
  var wrap = el("div", "root");
  wrap.setAttribute("dir", rtl ? "rtl" : "ltr");
  wrap.setAttribute("lang", lang);
  var panel = el("div", "panel");
  panel.hidden = !state.open;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", SETTINGS.title || T.title);
  var head = el("div", "head");
  head.appendChild(el("span", "title", SETTINGS.title || T.title));
  var closeButton = el("button", "close", "×");
  closeButton.setAttribute("aria-label", T.close);
  head.appendChild(closeButton);
  var notice = el("div", "notice");
  notice.hidden = true;
  var list = el("div", "messages");
  list.setAttribute("aria-live", "polite");
  var typing = el("div", "typing");
  typing.hidden = true;

  var form = el("form", "form");
  var formIntro = el("div", "intro", T.contactIntro);
  var nameInput = el("input", "name");
  nameInput.placeholder = T.name; nameInput.autocomplete = "name"; nameInput.maxLength = 200;
  var emailInput = el("input", "email");
  emailInput.type = "email"; emailInput.placeholder = T.email; emailInput.autocomplete = "email"; emailInput.maxLength = 320;
  var formRow = el("div", "row");
  var startButton = el("button", "primary start", T.start);
  startButton.type = "submit";
  var skipButton = el("button", "plain skip", T.skip);
  skipButton.type = "button";
  formRow.appendChild(startButton);
  if (SETTINGS.askContact === "optional") formRow.appendChild(skipButton);
  form.appendChild(formIntro); form.appendChild(nameInput); form.appendChild(emailInput); form.appendChild(formRow);

  var composer = el("form", "composer");
  var input = el("textarea", "input");
  input.placeholder = T.placeholder; input.maxLength = SETTINGS.maxChars; input.rows = 1;
  var fileInput = el("input");
  fileInput.type = "file"; fileInput.hidden = true; fileInput.accept = (SETTINGS.uploadTypes || []).join(",");
  var attachButton = el("button", "plain attach");
  attachButton.appendChild(icon(CLIP));
  attachButton.type = "button"; attachButton.setAttribute("aria-label", T.attach);
  var sendButton = el("button", "primary send", T.send);
  sendButton.type = "submit";
  composer.appendChild(input); composer.appendChild(fileInput); composer.appendChild(attachButton); composer.appendChild(sendButton);

  panel.appendChild(head); panel.appendChild(notice); panel.appendChild(list); panel.appendChild(typing);
  panel.appendChild(form); panel.appendChild(composer);
  var launcher = el("button", "launcher");
  launcher.appendChild(icon(CHAT));
  launcher.setAttribute("aria-label", T.open);
  var badge = el("span", "badge");
  badge.hidden = true;
  launcher.appendChild(badge);
  wrap.appendChild(panel); wrap.appendChild(launcher);
  root.appendChild(wrap);

  function needContact() {
    if (!state.available && !state.contact.email) return true;   // the answer must follow by email
    if (state.contact.done || SETTINGS.askContact === "none") return false;
    return true;
  }
  function layout() {
    var asking = needContact();
    form.hidden = !asking;
    composer.hidden = asking;
    composer.style.display = asking ? "none" : "";
    formIntro.textContent = state.available ? T.contactIntro : T.away;
    skipButton.hidden = !state.available;
    startButton.textContent = state.available ? T.start : T.saveEmail;
    var offline = !state.ready && state.attempt > 0;   // not before the first try has failed
    notice.hidden = !offline && (state.available || !state.ready);
    notice.textContent = offline ? T.offline : T.away;
    badge.hidden = !state.unseen;
    badge.textContent = String(state.unseen);
  }
  function scroll() { list.scrollTop = list.scrollHeight; }

  /* ---- Messages ---- */
  function metaText(item) {
    if (item.failed) return T.failed;
    if (item.read) return T.read;
    return item.acked ? T.sent : T.sending;
  }
  function render(item) {
    var key = item.client_id ? "c" + item.client_id : "s" + item.id;
    var node = shown[key] || (item.id && shown["s" + item.id]);
    var fresh = !node;
    if (fresh) {
      node = el("div", "msg " + item.from);
      shown[key] = node;
      list.appendChild(node);
    }
    if (item.id) shown["s" + item.id] = node;
    node.textContent = "";
    if (item.from !== "visitor") node.appendChild(el("span", "author", item.author || (item.from === "bot" ? T.bot : T.someone)));
    if (item.text) node.appendChild(el("span", "text", item.text));
    (item.attachments || []).forEach(function (file) {
      var href = fileLink(file);
      var line = el(href ? "a" : "span", "file", " " + file.filename);
      line.insertBefore(icon(CLIP), line.firstChild);
      if (href) {
        // A download (the server sends it as an attachment); only our own signed links.
        line.href = href;
        line.rel = "noopener noreferrer";
        if (/^image\/(png|jpeg|gif|webp)$/.test(file.content_type || "")) {
          var thumb = el("img", "thumb");
          thumb.src = href; thumb.alt = file.filename; thumb.loading = "lazy";
          line.appendChild(thumb);
        }
      }
      node.appendChild(line);
    });
    if (item.from === "visitor") {
      node.dataset.clientId = item.client_id || "";
      node.appendChild(el("span", "meta", metaText(item)));
    }
    if (fresh) scroll();
    return node;
  }
  function fileLink(file) {   // a path the server gave, never a URL from a message's text
    return typeof file.link === "string" && /^files\/[A-Za-z0-9._-]{1,1000}$/.test(file.link)
      ? base + "/" + file.link : "";
  }
  function showReplies(choices) {
    var old = list.querySelector(".replies");
    if (old) old.remove();
    if (!choices || !choices.length) return;
    var row = el("div", "replies");
    choices.forEach(function (choice) {
      var button = el("button", "reply", choice);
      button.type = "button";
      button.addEventListener("click", function () { row.remove(); submit(choice, []); });
      row.appendChild(button);
    });
    list.appendChild(row);
    scroll();
  }
  function system(text) { list.appendChild(el("div", "msg system", text)); scroll(); }
  function markRead(clientId) {
    var nodes = list.querySelectorAll(".msg.visitor");
    var reached = false;
    for (var i = nodes.length - 1; i >= 0; i--) {
      if (nodes[i].dataset.clientId === clientId) reached = true;
      if (reached) {
        var meta = nodes[i].querySelector(".meta");
        if (meta && meta.textContent !== T.failed) meta.textContent = T.read;
      }
    }
  }
  function fromServer(frame, live) {
    if (frame.id) state.lastId = Math.max(state.lastId, frame.id);
    var pending = frame.client_id && state.outbox.filter(function (m) { return m.client_id === frame.client_id; })[0];
    if (pending) forget(frame.client_id);
    frame.acked = true;
    render(frame);
    if (frame.from !== "visitor") {
      typing.hidden = true;
      showReplies(frame.quick_replies);
      if (live && panel.hidden) { state.unseen += 1; layout(); }
    }
  }

  /* ---- Sending, with an outbox that survives reloads ---- */
  function forget(clientId) {
    state.outbox = state.outbox.filter(function (m) { return m.client_id !== clientId; });
    save("outbox", state.outbox);
  }
  function transmit(item) {
    if (state.ws && state.ready) {
      state.ws.send(JSON.stringify({ type: "message", client_id: item.client_id, text: item.text, attachments: item.attachments }));
    }
  }
  function submit(text, attachments, clientId) {
    var item = { client_id: clientId || newId(), text: text, attachments: attachments || [], from: "visitor" };
    state.outbox.push(item);
    save("outbox", state.outbox);
    render(item);
    transmit(item);
  }
  function onError(frame) {
    var item = frame.client_id && state.outbox.filter(function (m) { return m.client_id === frame.client_id; })[0];
    if (frame.code === "bad_token") {
      state.token = null; save("token", null);
      if (state.ws) state.ws.close();
      return;
    }
    if (!item) { if (frame.code !== "hello_first") system(frame.message); return; }
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      setTimeout(function () { transmit(item); }, frame.code === "rate_limited" ? 15000 : 3000);
      return;
    }
    forget(item.client_id);            // refused for good (too long, bad attachment): say so
    item.failed = true;
    render(item);
    system(frame.message);
  }

  /* ---- The connection: reconnects by itself, with backoff, and resumes ---- */
  function connect() {
    clearTimeout(state.timer);
    var ws;
    try { ws = new WebSocket(wsUrl); } catch (e) { return retry(); }
    state.ws = ws; state.ready = false;
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "hello", token: state.token, last_id: state.lastId,
        name: state.contact.name || "", email: state.contact.email || "", page: String(location.href).slice(0, 1000) }));
    };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "welcome") {
        state.attempt = 0; state.ready = true; state.available = frame.available;
        state.token = frame.token; save("token", frame.token);
        (frame.messages || []).forEach(function (m) { fromServer(m, false); });
        if (frame.read) markRead(frame.read);
        if (frame.status === "resolved" && frame.messages && frame.messages.length) system(T.resolved);
        state.outbox.forEach(transmit);
        layout();
      } else if (frame.type === "message") {
        fromServer(frame, true);
      } else if (frame.type === "ack") {
        var item = state.outbox.filter(function (m) { return m.client_id === frame.client_id; })[0];
        forget(frame.client_id);
        var node = shown["c" + frame.client_id];
        if (item && node && frame.attachments) {   // its files, now with download links
          item.attachments = frame.attachments; item.acked = true;
          render(item);
        }
        var meta = node && node.querySelector(".meta");
        if (meta && meta.textContent === T.sending) meta.textContent = T.sent;
        if (!item && !node) return;
      } else if (frame.type === "read") {
        markRead(frame.client_id);
      } else if (frame.type === "typing") {
        typing.textContent = (frame.author || T.someone) + T.typing;
        typing.hidden = false;
        clearTimeout(state.typingTimer);
        state.typingTimer = setTimeout(function () { typing.hidden = true; }, 6000);
      } else if (frame.type === "status") {
        system(frame.status === "resolved" ? T.resolved : T.reopened);
      } else if (frame.type === "availability") {
        state.available = frame.available;
        layout();
      } else if (frame.type === "error") {
        onError(frame);
      }
    };
    ws.onclose = function () {
      if (state.ws === ws) { state.ws = null; state.ready = false; layout(); retry(); }
    };
  }
  function retry() {
    var delay = Math.min(10000, 500 * Math.pow(2, state.attempt)) * (0.5 + Math.random() / 2);
    state.attempt += 1;
    clearTimeout(state.timer);
    state.timer = setTimeout(connect, delay);
  }

  /* ---- What the visitor does ---- */
  launcher.addEventListener("click", function () {
    panel.hidden = !panel.hidden;
    state.open = !panel.hidden; save("open", state.open);
    if (state.open) { state.unseen = 0; scroll(); (needContact() ? nameInput : input).focus(); }
    layout();
  });
  closeButton.addEventListener("click", function () { panel.hidden = true; state.open = false; save("open", false); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var email = emailInput.value.trim();
    var required = SETTINGS.askContact === "required" || !state.available;
    if ((required && !email) || (email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))) { system(T.badEmail); return; }
    state.contact = { name: nameInput.value.trim(), email: email, done: true };
    save("contact", state.contact);
    if (state.ws && state.ready) state.ws.send(JSON.stringify({ type: "contact", name: state.contact.name, email: email }));
    layout();
    input.focus();
  });
  skipButton.addEventListener("click", function () {
    state.contact.done = true; save("contact", state.contact); layout(); input.focus();
  });
  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    submit(text, []);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : composer.dispatchEvent(new Event("submit"));
    }
  });
  var lastTyping = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 2000 && state.ws && state.ready) {
      lastTyping = now;
      state.ws.send(JSON.stringify({ type: "typing" }));
    }
  });
  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > SETTINGS.maxUploadBytes) { system(T.tooBig); return; }
    var clientId = newId();
    fetch(base + "/upload?client_id=" + clientId, {
      method: "POST", body: file,
      headers: { "Authorization": "Bearer " + state.token, "X-Filename": encodeURIComponent(file.name),
                 "Content-Type": file.type || "application/octet-stream" }
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || String(response.status));
        submit("", [body], clientId);
      });
    }).catch(function (error) { system(T.failed + ": " + error.message); });
  });

  function mount() {
    document.body.appendChild(host);
    state.outbox.forEach(render);   // left unacknowledged on an earlier page: sent once connected
    layout();
    connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
