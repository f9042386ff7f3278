// The login page: OAuth2 password flow against /auth/token, token kept in sessionStorage.

import { byTestId, safeNext, saveSession, session, takeNotice } from "/static/app.js";

const next = safeNext(new URLSearchParams(location.search).get("next"));

if (session()) {
  location.replace(next);
} else {
  const notice = takeNotice();
  if (notice) {
    const box = byTestId("login-notice");
    box.textContent = notice;
    box.hidden = false;
  }
  const form = byTestId("login-form");
  const error = byTestId("login-error");
  const submit = byTestId("login-submit");
  form.username.focus();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      error.textContent = "Enter your username and password.";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = "Logging in…";
    try {
      const response = await fetch("/auth/token", {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams({ grant_type: "password", username, password }),
        cache: "no-store",
      });
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw new Error(
          response.status === 401 ? "Wrong username or password." : payload.detail || `Login failed (HTTP ${response.status}).`,
        );
      }
      saveSession(payload, username);
      form.password.value = "";
      location.replace(next);
    } catch (exc) {
      error.textContent = exc instanceof TypeError ? "The service cannot be reached." : exc.message;
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Log in";
      form.password.select();
    }
  });
}
