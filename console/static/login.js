// Sign-in: posts the form as JSON; the session arrives as an HttpOnly cookie.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  I18n.apply();
  document.getElementById("lang-toggle").addEventListener("click", () => I18n.toggle());
  document.getElementById("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("login-error");
    error.textContent = "";
    const response = await fetch("/console/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({
        name: document.getElementById("name").value,
        password: document.getElementById("password").value,
      }),
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.assign("/console/");
      return;
    }
    if (response.status === 429) {
      error.textContent = I18n.t("too_many_attempts") + " (" + (response.headers.get("Retry-After") || "?") + " s)";
    } else {
      error.textContent = I18n.t("login_failed");
    }
  });
});
