// Live progress bars: while a batch on the page runs, poll its progress every 1.5 s and
// update the bar, the figures and the status in place. No build step, no dependencies.
"use strict";

const POLL_MS = 1500;

// The page's Content-Security-Policy allows no inline style: each bar's fill comes sized by
// data-percent, set here.
function sizeFills() {
  for (const fill of document.querySelectorAll(".progress .fill[data-percent]")) {
    fill.style.width = `${fill.dataset.percent}%`;
  }
}

function liveBatchIds() {
  const ids = new Set();
  for (const bar of document.querySelectorAll(".progress[data-live]")) ids.add(bar.dataset.batch);
  return [...ids];
}

function show(id, progress) {
  for (const bar of document.querySelectorAll(`.progress[data-batch="${CSS.escape(id)}"]`)) {
    const fill = bar.querySelector(".fill");
    fill.dataset.percent = String(progress.percent);
    fill.style.width = `${progress.percent}%`;
    fill.className = `fill status-${progress.status}`;
    for (const field of ["done", "samples", "pairs", "tokens_per_s"]) {
      const cell = bar.querySelector(`[data-field="${field}"]`);
      if (cell) cell.textContent = String(progress[field]);
    }
    const rate = bar.querySelector(".rate");
    if (rate) rate.hidden = !progress.tokens_per_s;
    if (progress.finished) bar.removeAttribute("data-live");
  }
  // Notes say why a batch waits (no worker serves its model): they come and go as it runs.
  for (const box of document.querySelectorAll(`[data-field="notes"][data-batch="${CSS.escape(id)}"]`)) {
    box.replaceChildren(...progress.notes.map((note) => {
      const line = document.createElement("p");
      line.className = "notice";
      line.textContent = note;
      return line;
    }));
  }
  for (const label of document.querySelectorAll(`[data-field="status"][data-batch="${CSS.escape(id)}"]`)) {
    label.textContent = progress.status;
    label.className = `status status-${progress.status}`;
  }
  // A batch page shows every count: read them afresh once the batch is done.
  if (progress.finished && document.querySelector(`[data-reload-when-finished="${CSS.escape(id)}"]`)) {
    window.location.reload();
  }
}

async function poll() {
  const ids = liveBatchIds();
  if (ids.length === 0) return;
  const query = ids.map((id) => `batch=${encodeURIComponent(id)}`).join("&");
  try {
    const response = await fetch(`/dashboard/progress?${query}`, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.reload(); // the key went away: the page itself goes to the login form
      return;
    }
    if (response.ok) {
      const body = await response.json();
      for (const [id, progress] of Object.entries(body.batches)) show(id, progress);
    }
  } catch (error) {
    // The API restarting or the network blinking: try again at the next tick.
  }
  window.setTimeout(poll, POLL_MS);
}

sizeFills();
if (liveBatchIds().length > 0) window.setTimeout(poll, POLL_MS);

// A script that changes state (fetch with POST) sends the page's CSRF token as this header;
// forms carry it as their hidden csrf_token field.
// eslint-disable-next-line no-unused-vars
function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return { "X-CSRF-Token": meta ? meta.content : "" };
}

// Review keys on the sample viewer: a accepts, o overturns the current answer's verdict; n or j
// moves to the next answer (past the last: the next prompt, or back to the review queue), p or
// k to the previous one. Keys typed into the review form's fields are left alone.
const answers = [...document.querySelectorAll("article.answer[data-sample]")];
let current = -1;

function focusAnswer(index) {
  if (index < 0 || index >= answers.length) return;
  if (current >= 0) answers[current].classList.remove("current");
  current = index;
  answers[current].classList.add("current");
  answers[current].scrollIntoView({ block: "nearest" });
}

function startingAnswer() {
  const fromHash = answers.findIndex((answer) => `#${answer.id}` === window.location.hash);
  if (fromHash >= 0) return fromHash;
  const unreviewed = answers.findIndex((answer) => !answer.hasAttribute("data-reviewed"));
  return unreviewed >= 0 ? unreviewed : 0;
}

function onReviewKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || current < 0) return;
  if (event.target.closest("input, textarea, select, button")) return;
  const key = event.key.toLowerCase();
  if (key === "a" || key === "o") {
    const button = answers[current].querySelector(`button[data-shortcut="${key}"]`);
    if (button && !button.disabled) button.click();
  } else if (key === "n" || key === "j") {
    if (current + 1 < answers.length) focusAnswer(current + 1);
    else {
      const next = document.getElementById("review-pager")?.dataset.nextUrl;
      if (next) window.location.assign(next);
    }
  } else if (key === "p" || key === "k") {
    focusAnswer(current - 1);
  } else {
    return;
  }
  event.preventDefault();
}

if (answers.length > 0) {
  focusAnswer(startingAnswer());
  for (const [index, answer] of answers.entries()) {
    answer.addEventListener("click", () => focusAnswer(index));
  }
  document.addEventListener("keydown", onReviewKey);
}
