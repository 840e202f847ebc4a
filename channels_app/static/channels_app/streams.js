// channels_app stream client: a WebSocket that comes back, with what it missed.
//
// A dependency-free ES module (no build step) for consumers that use
// channels_app.streams.StreamsMixin.  It reconnects with jittered exponential
// back-off, notices a dead connection by heartbeat, resubscribes after every
// reconnect with the last position of each stream (kept in sessionStorage,
// so a page navigation in the same tab resumes too), hands each stream
// message to its handler once and in order, and sends requests that get the
// server's answer or a timeout.  The wire format is documented in
// docs/topics/streams.rst; docs/topics/stream_client.rst documents this API.
//
//   import { StreamClient } from "/static/channels_app/streams.js";
//   const client = new StreamClient("/ws/chat/");
//   client.subscribe("chat.lobby", (data, meta) => show(data));
//   client.addEventListener("gap", (event) => reloadHistory(event.detail.stream));
//   client.connect();

const DEFAULTS = {
  heartbeatInterval: 15000, // ms between pings while nothing else arrives
  heartbeatTimeout: 10000, // ms a ping may go unanswered before the socket is dead
  backoffInitial: 500, // ms before the first reconnect
  backoffMax: 30000, // ms cap of the back-off
  backoffFactor: 2,
  requestTimeout: 10000, // ms a request waits for its reply
  storage: sessionStorageOrNull(), // null: positions live only in memory
  storageKey: null, // default: "channels_app.streams " + the socket URL
  WebSocket: globalThis.WebSocket,
};

/** sessionStorage, or null where reading it throws (sandboxed frames). */
function sessionStorageOrNull() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch (error) {
    return null;
  }
}

/** Resolve a path such as "/ws/chat/" against the page: ws: or wss:. */
function socketUrl(url) {
  if (/^wss?:\/\//.test(url)) return url;
  const resolved = new URL(url, globalThis.location.href);
  resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  return resolved.href;
}

export class RequestTimeout extends Error {}
export class RequestFailed extends Error {}

export class StreamClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = socketUrl(url);
    this.options = { ...DEFAULTS, ...options };
    this.storageKey = this.options.storageKey || `channels_app.streams ${this.url}`;
    this.socket = null;
    this.attempt = 0; // reconnects since the last successful open
    this.closedByUser = true;
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.deadline = null;
    this.nextId = 1;
    this.pending = new Map(); // request id -> {resolve, reject, timer, frame}
    this.streams = new Map(); // stream -> {handler, subscribed}
    this.positions = this.loadPositions(); // stream -> {epoch, offset}
    this.present = new Map(); // topic -> Map(user -> [meta, ...])
    this.onOnline = () => this.reconnectNow();
  }

  /** True while the socket is open. */
  get connected() {
    return this.socket !== null && this.socket.readyState === 1;
  }

  connect() {
    this.closedByUser = false;
    globalThis.addEventListener?.("online", this.onOnline);
    if (this.socket === null && this.reconnectTimer === null) this.open();
    return this;
  }

  /** Close for good: no reconnect; pending requests fail. */
  close() {
    this.closedByUser = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.dropSocket(1000, "closed by the client");
    this.failPending(new RequestFailed("the client was closed"));
  }

  /** Receive ``stream``'s messages: handler(data, {stream, epoch, offset}). */
  subscribe(stream, handler) {
    this.streams.set(stream, { handler, subscribed: false });
    if (this.connected) this.sendSubscribe(stream);
    return () => this.unsubscribe(stream);
  }

  unsubscribe(stream) {
    if (!this.streams.delete(stream)) return;
    delete this.positions[stream];
    this.savePositions();
    if (this.connected) this.sendFrame({ type: "stream.unsubscribe", stream });
  }

  /** Who is present in ``topic``, as the server last said: a Map of user ->
   * the metadata of each of their connections (empty if not tracked). */
  presence(topic) {
    return this.present.get(topic) || new Map();
  }

  /** The last position handled, per stream ({epoch, offset}). */
  position(stream) {
    return this.positions[stream] || null;
  }

  /**
   * Send ``data`` to the consumer's handle_request(); resolves with its
   * answer, rejects with RequestFailed (the server refused or failed) or
   * RequestTimeout.  Sent once connected; not resent after a reconnect
   * (the server may have acted on it), so a lost reply is a timeout.
   */
  request(data, { timeout = this.options.requestTimeout } = {}) {
    const id = this.nextId++;
    const frame = { type: "stream.request", id, data };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestTimeout(`no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, frame, sent: false });
      if (this.connected) this.sendRequest(id);
    });
  }

  /** Send any JSON frame of your own to the consumer (dropped if offline). */
  send(frame) {
    if (!this.connected) return false;
    this.sendFrame(frame);
    return true;
  }

  // -- the socket --------------------------------------------------------------

  open() {
    this.reconnectTimer = null;
    const socket = new this.options.WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.emit("connected", {});
      for (const stream of this.streams.keys()) this.sendSubscribe(stream);
      for (const [id, request] of this.pending) if (!request.sent) this.sendRequest(id);
      this.armHeartbeat();
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.armHeartbeat();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        this.emit("error", { error, data: event.data });
        return;
      }
      this.handleFrame(frame);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.lost(event.code, event.reason);
    };
  }

  /** The connection is gone (closed, or dead by heartbeat): come back later. */
  lost(code, reason) {
    this.socket = null;
    this.stopHeartbeat();
    for (const entry of this.streams.values()) entry.subscribed = false;
    const willRetry = !this.closedByUser;
    const delay = willRetry ? this.backoff() : null;
    this.emit("disconnected", { code, reason, willRetry, retryIn: delay });
    // A listener may have called close() (to switch to another transport,
    // say): then it is for good, whatever willRetry said a moment ago.
    if (willRetry && !this.closedByUser) {
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    }
  }

  reconnectNow() {
    if (this.closedByUser || this.connected) return;
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.open();
    }
  }

  /** Exponential, capped, and jittered (half fixed, half random) so that
   * clients dropped together do not all come back in the same instant. */
  backoff() {
    const { backoffInitial, backoffMax, backoffFactor } = this.options;
    const ceiling = Math.min(backoffMax, backoffInitial * backoffFactor ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  dropSocket(code, reason) {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    this.stopHeartbeat();
    try {
      socket.close(code, reason);
    } catch (error) {
      // already closing
    }
  }

  // -- heartbeat ---------------------------------------------------------------

  /** Any frame proves the connection alive; after a quiet interval, ping,
   * and a ping left unanswered for heartbeatTimeout means it is dead. */
  armHeartbeat() {
    this.stopHeartbeat();
    this.heartbeatTimer = setTimeout(() => {
      this.sendFrame({ type: "stream.ping", id: this.nextId++ });
      this.deadline = setTimeout(() => {
        const socket = this.socket;
        this.dropSocket(4000, "no heartbeat");
        if (socket !== null) this.lost(1006, "no heartbeat");
      }, this.options.heartbeatTimeout);
    }, this.options.heartbeatInterval);
  }

  stopHeartbeat() {
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.deadline);
    this.heartbeatTimer = this.deadline = null;
  }

  // -- frames --------------------------------------------------------------------

  sendFrame(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  sendSubscribe(stream) {
    const frame = { type: "stream.subscribe", stream };
    const since = this.positions[stream];
    if (since) frame.since = { epoch: since.epoch, offset: since.offset };
    this.sendFrame(frame);
  }

  sendRequest(id) {
    const request = this.pending.get(id);
    request.sent = true;
    this.sendFrame(request.frame);
  }

  handleFrame(frame) {
    switch (frame.type) {
      case "stream.subscribed":
        return this.onSubscribed(frame);
      case "stream.message":
        return this.onMessage(frame);
      case "stream.gap":
        this.setPosition(frame.stream, frame.epoch, frame.offset);
        return this.emit("gap", { stream: frame.stream, reason: frame.reason });
      case "stream.refused":
        this.streams.delete(frame.stream);
        return this.emit("refused", frame);
      case "stream.reply":
        return this.onReply(frame);
      case "stream.pong":
      case "stream.unsubscribed":
        return undefined;
      case "presence.state":
      case "presence.join":
      case "presence.leave":
      case "presence.update":
        return this.onPresence(frame);
      default:
        // The consumer's own frames.
        return this.emit("frame", frame);
    }
  }

  onSubscribed(frame) {
    const entry = this.streams.get(frame.stream);
    if (entry === undefined) return;
    entry.subscribed = true;
    const asked = this.positions[frame.stream];
    this.setPosition(frame.stream, frame.epoch, frame.offset);
    const detail = { stream: frame.stream, recovery: frame.recovery };
    if (frame.recovery === "recovered") this.emit("recovered", detail);
    else if (frame.recovery !== "none") {
      this.emit("gap", { ...detail, reason: frame.recovery, since: asked });
    }
    this.emit("subscribed", detail);
  }

  onMessage(frame) {
    const entry = this.streams.get(frame.stream);
    if (entry === undefined) return;
    const last = this.positions[frame.stream];
    // Once, in order: after a reconnect the server may resend what the
    // client had already handled; an offset at or below the last is one.
    if (last && last.epoch === frame.epoch && frame.offset <= last.offset) return;
    this.setPosition(frame.stream, frame.epoch, frame.offset);
    const meta = { stream: frame.stream, epoch: frame.epoch, offset: frame.offset };
    try {
      entry.handler(frame.data, meta);
    } catch (error) {
      this.emit("error", { error, frame });
    }
    this.emit("message", { ...meta, data: frame.data });
  }

  onReply(frame) {
    const request = this.pending.get(frame.id);
    if (request === undefined) return; // timed out already
    this.pending.delete(frame.id);
    clearTimeout(request.timer);
    if (frame.ok) request.resolve(frame.data);
    else request.reject(new RequestFailed(frame.error || "the request failed"));
  }

  /** Keep ``presence(topic)`` as the server describes it: a full state
   * after each (re)connect, then one change per frame.  An update carries
   * one connection's metadata; with several tabs, the user's entry holds
   * the latest. */
  onPresence(frame) {
    const kind = frame.type.slice("presence.".length);
    let members = this.present.get(frame.topic);
    if (kind === "state") {
      members = new Map(Object.entries(frame.members));
      this.present.set(frame.topic, members);
    } else {
      if (members === undefined) {
        members = new Map();
        this.present.set(frame.topic, members);
      }
      if (kind === "leave") members.delete(frame.user);
      else members.set(frame.user, [frame.meta || {}]); // join or update
    }
    this.emit("presence", {
      topic: frame.topic,
      change: kind,
      user: frame.user ?? null,
      meta: frame.meta ?? null,
      members,
    });
  }

  failPending(error) {
    for (const request of this.pending.values()) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.pending.clear();
  }

  // -- positions ---------------------------------------------------------------

  setPosition(stream, epoch, offset) {
    this.positions[stream] = { epoch, offset };
    this.savePositions();
  }

  loadPositions() {
    try {
      const saved = this.options.storage?.getItem(this.storageKey);
      return saved ? JSON.parse(saved) : {};
    } catch (error) {
      return {};
    }
  }

  savePositions() {
    try {
      this.options.storage?.setItem(this.storageKey, JSON.stringify(this.positions));
    } catch (error) {
      // storage full or disabled: positions still live in memory
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
