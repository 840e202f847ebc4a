// The room page: live messages, presence and typing over a WebSocket, with a
// Server-Sent-Events stream plus HTTP POST as the fallback transport.
// Add ?transport=sse to the page URL to use the fallback on purpose.
(function () {
  "use strict";

  const root = document.getElementById("chat");
  const slug = root.dataset.room;
  const me = root.dataset.user;
  const heartbeatMs = Number(root.dataset.heartbeatMs) || 10000;
  const list = document.getElementById("messages");
  const online = document.getElementById("online");
  const typingLine = document.getElementById("typing");
  const errorLine = document.getElementById("error");
  const statusBadge = document.getElementById("status");
  const form = document.getElementById("compose");
  const input = document.getElementById("text");
  const csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;

  let lastId = Number(root.dataset.lastId) || 0;
  let socket = null;
  let heartbeatTimer = null;
  let failedAttempts = 0;
  let everOpened = false;
  let lastTypingSent = 0;
  const typingUntil = new Map();

  function setStatus(text) {
    statusBadge.textContent = text;
    root.dataset.status = text;
  }

  function renderMessage(message) {
    let item = list.querySelector(`li[data-id="${message.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.id = message.id;
      const author = document.createElement("span");
      author.className = "author";
      const text = document.createElement("span");
      text.className = "text";
      item.append(author, " ", text);
      list.append(item);
      item.scrollIntoView({block: "end"});
    }
    item.querySelector(".author").textContent = message.author;
    item.querySelector(".text").textContent = message.text;
    item.classList.toggle("moderated", message.moderated);
    lastId = Math.max(lastId, message.id);
    typingUntil.delete(message.author);
    renderTyping();
  }

  function renderPresence(users) {
    online.replaceChildren(
      ...users.map((name) => {
        const item = document.createElement("li");
        item.textContent = name;
        if (name === me) item.className = "me";
        return item;
      }),
    );
  }

  function renderTyping() {
    const now = Date.now();
    const names = [...typingUntil].filter(([, until]) => until > now).map(([n]) => n);
    typingLine.textContent = names.length
      ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…`
      : "";
  }
  setInterval(renderTyping, 500);

  function handle(event) {
    switch (event.type) {
      case "message":
      case "message_updated":
        renderMessage(event.message);
        break;
      case "presence":
        renderPresence(event.users);
        break;
      case "typing":
        typingUntil.set(event.user, Date.now() + 3000);
        renderTyping();
        break;
      case "error":
        errorLine.textContent = event.error;
        break;
    }
  }

  // --- WebSocket transport -------------------------------------------------

  function connectWebSocket() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${slug}/?after=${lastId}`);
    socket.onopen = () => {
      everOpened = true;
      failedAttempts = 0;
      setStatus("live");
      heartbeatTimer = setInterval(() => send({type: "heartbeat"}), heartbeatMs);
    };
    socket.onmessage = (frame) => handle(JSON.parse(frame.data));
    socket.onclose = () => {
      clearInterval(heartbeatTimer);
      socket = null;
      failedAttempts += 1;
      if (!everOpened && failedAttempts >= 2) {
        connectEventStream();
        return;
      }
      setStatus("reconnecting…");
      setTimeout(connectWebSocket, Math.min(1000 * failedAttempts, 10000));
    };
  }

  function send(event) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(event));
      return true;
    }
    return false;
  }

  // --- Server-Sent Events fallback -----------------------------------------

  function connectEventStream() {
    const stream = new EventSource(`/rooms/${slug}/events/?after=${lastId}`);
    for (const kind of ["message", "message_updated", "presence", "typing"]) {
      stream.addEventListener(kind, (e) => handle({type: kind, ...JSON.parse(e.data)}));
    }
    stream.onopen = () => setStatus("live (event stream)");
    stream.onerror = () => setStatus("reconnecting…");
  }

  async function postOverHttp(text) {
    const response = await fetch(root.dataset.postUrl, {
      method: "POST",
      headers: {"X-CSRFToken": csrfToken},
      body: new URLSearchParams({text}),
    });
    const body = await response.json();
    if (!response.ok) errorLine.textContent = body.error;
  }

  // --- Composing -----------------------------------------------------------

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    errorLine.textContent = "";
    if (!send({type: "message", text})) postOverHttp(text);
    input.value = "";
    lastTypingSent = 0;
  });

  input.addEventListener("input", () => {
    const now = Date.now();
    if (input.value && now - lastTypingSent > 2000) {
      lastTypingSent = now;
      send({type: "typing"});
    }
  });

  if (new URLSearchParams(location.search).get("transport") === "sse") {
    connectEventStream();
  } else {
    connectWebSocket();
  }
})();
