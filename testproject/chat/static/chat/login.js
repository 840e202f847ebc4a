// Log in over a WebSocket, then get the new session cookie through HTTP.
// A WebSocket cannot set cookies: the server answers a successful login with
// a one-time ticket, and posting it to the session-sync view sets the cookie.
// Whenever something goes wrong on the way, the form is posted normally.
(function () {
  "use strict";

  const form = document.getElementById("login-form");
  if (!form || !("WebSocket" in window)) return;
  const errorLine = document.getElementById("login-error");

  function destination() {
    const next = form.elements.next.value;
    // The server only renders safe values; still, never leave the site.
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  }

  async function useTicket(ticket) {
    const response = await fetch(form.dataset.syncUrl, {
      method: "POST",
      headers: {"X-CSRFToken": form.elements.csrfmiddlewaretoken.value},
      body: new URLSearchParams({ticket}),
    });
    if (response.ok) {
      location.assign(destination());
    } else {
      form.submit();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errorLine.textContent = "";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${form.dataset.socketUrl}`);
    let answered = false;

    socket.onopen = () => {
      socket.send(JSON.stringify({
        type: "login",
        username: form.elements.username.value,
        password: form.elements.password.value,
      }));
    };
    socket.onmessage = (frame) => {
      answered = true;
      socket.close();
      const reply = JSON.parse(frame.data);
      if (reply.type === "logged_in") {
        useTicket(reply.ticket);
      } else {
        errorLine.textContent = reply.error;
      }
    };
    socket.onclose = () => {
      if (!answered) form.submit();  // No socket: the classic way.
    };
  });
})();
