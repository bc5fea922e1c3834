// respaldo's page: progressive enhancement over plain forms. Every form also works
// without JavaScript (the server answers a form post with a redirect); with it, actions
// run in place, with the specification's busy button and toasts, and running jobs refresh.
"use strict";

const csrf = () => document.body.dataset.csrf;
const messages = () => document.getElementById("messages")?.dataset ?? {};

function toast(text, kind) {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.textContent = text;
  box.appendChild(item);
  setTimeout(() => item.remove(), 8000);
}

async function post(url, form) {
  const body = new URLSearchParams(new FormData(form));
  const response = await fetch(url, {
    method: "POST",
    body,
    headers: { Accept: "application/json", "X-CSRF-Token": csrf() },
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    const error = new Error(data.detail || response.statusText);
    error.data = data;
    throw error;
  }
  return data;
}

async function waitForJob(id) {
  // The job's own page is the truth; poll it until the job has ended.
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const response = await fetch(`/jobs/${id}.json`, { credentials: "same-origin" });
    if (!response.ok) return null;
    const job = await response.json();
    await refreshJobs();
    if (!["queued", "running"].includes(job.status)) return job;
  }
}

async function refreshJobs() {
  const table = document.querySelector("[data-live-jobs]");
  if (!table) return;
  const scope = table.closest("[data-jobs-scope]")?.dataset.jobsScope || "all";
  const response = await fetch(`/jobs/table?scope=${scope}`, { credentials: "same-origin" });
  if (response.ok) table.outerHTML = await response.text();
}

function busy(button, on) {
  if (on) {
    button.dataset.label = button.textContent;
    button.textContent = button.dataset.busy || button.textContent;
    button.disabled = true;
  } else {
    button.textContent = button.dataset.label || button.textContent;
    button.disabled = false;
  }
}

function startAction(form, started, failed) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    busy(button, true);
    try {
      const result = await post(form.action, form);
      toast(messages()[started], "success");
      form.closest("dialog")?.close();
      if (result.jobId) {
        const job = await waitForJob(result.jobId);
        if (job) toast(`${messages().jobFinished}: ${job.statusLabel || job.status}`, job.status === "completed" ? "success" : "error");
        window.location.reload();
      }
    } catch (error) {
      toast(`${messages()[failed]}: ${error.message}`, "error");
    } finally {
      busy(button, false);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const create = document.querySelector("form[data-action=create-backup]");
  if (create) startAction(create, "backupStarted", "backupFailed");
  const drill = document.querySelector("form[data-action=run-drill]");
  if (drill) startAction(drill, "drillStarted", "drillFailed");

  const dialog = document.getElementById("restore-dialog");
  if (dialog) {
    const form = dialog.querySelector("form");
    startAction(form, "restoreStarted", "restoreFailed");
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    document.querySelectorAll("[data-restore]").forEach((button) => {
      button.addEventListener("click", () => {
        form.action = `/backups/${button.dataset.restore}/restore`;
        const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
        form.elements.target.value = `${button.dataset.database}_restored_${stamp}`;
        form.elements.confirm.value = "";
        form.elements.mode.value = "new";
        dialog.showModal();
      });
    });
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.dataset.action !== "cancel-job") return;
    event.preventDefault();
    try {
      await post(form.action, form);
      await refreshJobs();
    } catch (error) {
      toast(error.message, "error");
    }
  });

  const language = document.getElementById("language");
  language?.addEventListener("change", () => language.form.submit());

  if (document.querySelector("[data-live-jobs] tr[data-status=running], [data-live-jobs] tr[data-status=queued]")) {
    const timer = setInterval(async () => {
      await refreshJobs();
      if (!document.querySelector("[data-live-jobs] tr[data-status=running], [data-live-jobs] tr[data-status=queued]")) {
        clearInterval(timer);
      }
    }, 2000);
  }
});
