// The realtime stream: reconnects with backoff and `?since=` so nothing is missed.

export class Live {
  constructor({ onEvent, onSignal, onCustomerTyping, onState, onLoggedOut }) {
    this.onEvent = onEvent;
    this.onSignal = onSignal;
    this.onCustomerTyping = onCustomerTyping;
    this.onState = onState;
    this.onLoggedOut = onLoggedOut;
    this.lastId = null;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.timer = null;
    this.viewing = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    if (this.stopped) return;
    const base = location.origin.replace(/^http/, "ws") + "/api/v1/events";
    const url = this.lastId !== null ? `${base}?since=${this.lastId}` : base;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState(true);
      if (this.viewing !== null) this.send({ type: "viewing", conversation_id: this.viewing });
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "replay.truncated") {
        this.lastId = event.next_since;
        ws.close(1000);
        return;
      }
      if (event.type === "collision") {
        this.onSignal(event);
        return;
      }
      if (event.type === "customer_typing") {
        this.onCustomerTyping(event.conversation_id);
        return;
      }
      if (typeof event.id === "number") {
        if (this.lastId === null || event.id > this.lastId) this.lastId = event.id;
      }
      this.onEvent(event);
    };
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (close.code === 4001) {
        this.onLoggedOut();
        return;
      }
      this.onState(false);
      const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), close.code === 1000 ? 50 : delay);
    };
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  view(conversationId) {
    this.viewing = conversationId;
    this.send({ type: "viewing", conversation_id: conversationId });
  }

  typing(conversationId) {
    this.send({ type: "typing", conversation_id: conversationId });
  }
}

let audio = null;

/** A short two-tone beep through Web Audio; no asset file. */
export function beep() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [offset, freq] of [[0, 880], [0.12, 1320]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.15, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.11);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.12);
    }
  } catch {
    /* no audio: fine */
  }
}

export function desktopNotify(title, body, onclick) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const note = new Notification(title, { body, tag: title + body });
    note.onclick = () => {
      window.focus();
      onclick?.();
      note.close();
    };
  } catch {
    /* some browsers only allow notifications from a service worker */
  }
}
