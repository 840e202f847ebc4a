// The room page: live messages, presence and typing through channels_app's
// stream client (streams.js), with a Server-Sent-Events stream plus HTTP POST
// as the fallback transport.  Add ?transport=sse to the page URL to use the
// fallback on purpose.
//
// The client does the hard parts: it reconnects with back-off, notices a dead
// connection by heartbeat, and resubscribes to the room's stream from the
// last message this tab showed, so what was posted while the browser was
// offline arrives when it is back.  This file only draws.
import { StreamClient } from "/static/channels_app/streams.js";

const root = document.getElementById("chat");
const slug = root.dataset.room;
const stream = root.dataset.stream; // "chat.<slug>": the stream and the presence topic
const me = root.dataset.user;
const list = document.getElementById("messages");
const online = document.getElementById("online");
const typingLine = document.getElementById("typing");
const errorLine = document.getElementById("error");
const statusBadge = document.getElementById("status");
const form = document.getElementById("compose");
const input = document.getElementById("text");
const csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;

let lastTypingSent = 0;
const typingUntil = new Map();

function setStatus(text) {
  statusBadge.textContent = text;
  root.dataset.status = text;
}

/** Show a message, or redraw it in place (moderation edits one: same id). */
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
    // In id order: a reloaded history may hold messages older than the last.
    const after = [...list.children].find((li) => Number(li.dataset.id) > message.id);
    list.insertBefore(item, after || null);
    item.scrollIntoView({ block: "end" });
  }
  item.querySelector(".author").textContent = message.author;
  item.querySelector(".text").textContent = message.text;
  item.classList.toggle("moderated", message.moderated);
  typingUntil.delete(message.author);
  renderTyping();
}

function renderPresence(users) {
  online.replaceChildren(
    ...[...users].sort().map((name) => {
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

function showTyping(user) {
  typingUntil.set(user, Date.now() + 3000);
  renderTyping();
}

/** The room's recent history, from the server: after a gap in the stream
 * (it no longer holds what this tab missed) and on the first subscription
 * (what was posted between the page's rendering and the subscription). */
async function reloadRecent() {
  const response = await fetch(root.dataset.recentUrl, { credentials: "same-origin" });
  if (!response.ok) return;
  const body = await response.json();
  body.messages.forEach(renderMessage);
}

// --- WebSocket transport: the stream client ---------------------------------

function connectStreamClient() {
  const options = JSON.parse(document.getElementById("client-options").textContent);
  const client = new StreamClient(`/ws/rooms/${slug}/`, options);
  let everConnected = false;
  let failures = 0;
  client.subscribe(stream, (message) => renderMessage(message));
  client.addEventListener("connected", () => {
    everConnected = true;
    setStatus("live");
  });
  client.addEventListener("disconnected", () => {
    failures += 1;
    if (!everConnected && failures >= 2) {
      // WebSocket never worked here (a proxy that refuses it): fall back.
      client.close();
      connectEventStream();
      return;
    }
    setStatus("reconnecting…");
  });
  client.addEventListener("subscribed", (event) => {
    if (event.detail.recovery === "none") reloadRecent();
  });
  client.addEventListener("gap", () => reloadRecent());
  client.addEventListener("presence", (event) => {
    if (event.detail.topic === stream) renderPresence(event.detail.members.keys());
  });
  client.addEventListener("frame", (event) => {
    const frame = event.detail;
    if (frame.type === "ping") client.send({ type: "pong" }); // "still here"
    else if (frame.type === "typing") showTyping(frame.user);
    else if (frame.type === "error") errorLine.textContent = frame.error;
  });
  client.connect();
  return client;
}

// --- Server-Sent Events fallback ----------------------------------------------

let client = null;

function connectEventStream() {
  client = null;
  const events = new EventSource(`/rooms/${slug}/events/`);
  events.addEventListener("message", (e) => renderMessage(JSON.parse(e.data).message));
  events.addEventListener("presence", (e) => renderPresence(JSON.parse(e.data).users));
  events.addEventListener("typing", (e) => showTyping(JSON.parse(e.data).user));
  events.addEventListener("gap", () => reloadRecent());
  events.onopen = () => setStatus("live (event stream)");
  events.onerror = () => setStatus("reconnecting…");
}

async function postOverHttp(text) {
  const response = await fetch(root.dataset.postUrl, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken },
    body: new URLSearchParams({ text }),
  });
  const body = await response.json();
  if (!response.ok) errorLine.textContent = body.error;
}

// --- Composing ----------------------------------------------------------------

async function post(text) {
  if (client === null) return postOverHttp(text);
  try {
    // The consumer's handle_request answers with the stored message, or
    // refuses with the reason (empty, too long...).
    const { message } = await client.request({ type: "message", text });
    renderMessage(message);
  } catch (error) {
    errorLine.textContent = error.message;
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  errorLine.textContent = "";
  post(text);
  input.value = "";
  lastTypingSent = 0;
});

input.addEventListener("input", () => {
  const now = Date.now();
  if (client !== null && input.value && now - lastTypingSent > 2000) {
    lastTypingSent = now;
    client.send({ type: "typing" });
  }
});

if (new URLSearchParams(location.search).get("transport") === "sse") {
  connectEventStream();
} else {
  client = connectStreamClient();
}
