/**
 * The chat panel of a film page and of the all-films page.
 *
 * A turn: POST the question (form-encoded, CSRF header) to the panel's ask URL, which answers
 * {conversation, message, stream, stop, regenerate}; then read the answer's stream with EventSource:
 *   sources → the passages used, shown at once;
 *   token   → text appended as it arrives (as text: the model's output is never parsed as HTML here);
 *   done    → the streamed text is replaced by the server's `html`, rendered from Markdown and sanitised by nh3;
 *   error   → a message for its code, with Retry when a retry can help.
 * innerHTML is only ever given the server's sanitised `html`.
 *
 * The conversation's id lives in the page URL (?c=<uuid>), so a reload (or a link from the history page) shows the
 * conversation again: finished answers from the conversation's JSON, an unfinished one by reopening its stream
 * after the characters already shown (?from=).
 */

const ERROR_TEXT = {
  upstream_unavailable: "The language model is unavailable right now. Try again in a moment.",
  upstream_error: "The language model ran into an error. Try again.",
  timeout: "The language model took too long to answer. Try again.",
  connection: "The language model could not be reached. Try again.",
  stream_interrupted: "The answer was cut off. Try again.",
  unauthorized: "The language model is misconfigured (its API key was refused), so no answer can be written.",
  payment_required: "The language model is misconfigured (its account has no credits left), so no answer can be written.",
  bad_response: "The language model sent a reply that could not be read.",
  internal_error: "Something went wrong while answering. Try again.",
  network: "The connection to flickora was lost. Check your connection and try again.",
};
// How many times in a row the browser may try to reconnect a broken stream before we give up and say so.
const MAX_RECONNECTS = 3;
// After Stop, how long to wait for the stream's own `done` before ending the answer here.
const STOP_GRACE_MS = 5000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** POST form data; resolves to {status, body, retryAfter} (status 0: the request never got an answer). */
async function post(url, data = {}) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: new URLSearchParams(data),
      credentials: "same-origin",
    });
  } catch {
    return { status: 0, body: null, retryAfter: null };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  return { status: response.status, body, retryAfter };
}

/** An element with attributes and children; strings become text nodes (never HTML). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** Length in code points, as the server counts characters for `id:` and `?from=`. */
function charCount(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Open a report section of this page, scroll to it and light it up. False when it is not on this page. */
export function highlightSection(id) {
  const section = document.getElementById(`section-${id}`);
  if (!section || !section.classList.contains("report-section")) return false;
  if ("open" in section) section.open = true;
  section.classList.remove("highlight");
  void section.offsetWidth; // restart the highlight animation when the same section is cited twice
  section.classList.add("highlight");
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  section.scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
  section.querySelector("summary")?.focus({ preventScroll: true });
  history.replaceState(history.state, "", `${location.pathname}${location.search}#section-${id}`);
  return true;
}

function errorMessage(code, fallback) {
  return ERROR_TEXT[code] || fallback || "Something went wrong. Try again.";
}

/** One assistant answer in the log, with its stream. */
class Answer {
  constructor(panel, urls) {
    this.panel = panel;
    this.urls = urls; // {message, stream, stop, regenerate}
    this.sources = [];
    this.shown = 0; // characters of text shown, as the server counts them
    this.source = null;
    this.reconnects = 0;
    this.sourcesEl = el("div", { class: "sources", hidden: true });
    this.body = el("div", { class: "msg-body streaming-text" });
    this.text = document.createTextNode("");
    this.body.append(this.text);
    this.footer = el("div", { class: "msg-footer" });
    this.el = el(
      "article",
      { class: "msg msg-assistant", "data-message": urls.message, "data-status": "pending", "aria-busy": "true" },
      el("span", { class: "msg-who" }, "flickora"),
      this.sourcesEl,
      this.body,
      this.footer,
    );
  }

  setStatus(status) {
    this.el.dataset.status = status;
    this.el.setAttribute("aria-busy", String(status === "pending" || status === "streaming"));
  }

  /** Read the answer's stream, starting after `from` characters already on screen. */
  stream(from = 0) {
    this.close();
    this.setStatus("streaming");
    this.footer.replaceChildren();
    const url = from > 0 ? `${this.urls.stream}?from=${from}` : this.urls.stream;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("open", () => {
      this.reconnects = 0;
    });
    source.addEventListener("sources", (event) => this.showSources(JSON.parse(event.data).sources));
    source.addEventListener("token", (event) => this.append(JSON.parse(event.data).t));
    source.addEventListener("done", (event) => {
      this.close();
      this.finish(JSON.parse(event.data));
    });
    source.addEventListener("error", (event) => {
      if (event.data) {
        // The server's own `error` event: the answer failed upstream.
        this.close();
        this.fail(JSON.parse(event.data).error);
        return;
      }
      // The connection broke. EventSource reconnects by itself with Last-Event-ID (the characters received), and
      // the server resumes after them; past a few failures in a row, or once it gives up, say so.
      this.reconnects += 1;
      if (source.readyState === EventSource.CLOSED || this.reconnects > MAX_RECONNECTS) {
        this.close();
        this.fail({ code: "network", retryable: true, resume: true });
      }
    });
  }

  close() {
    if (this.source) {
      this.source.close(); // else the browser would reconnect and replay the end again
      this.source = null;
    }
    clearTimeout(this.stopTimer);
  }

  append(piece) {
    const stick = this.panel.atBottom();
    this.text.appendData(piece);
    this.shown += charCount(piece);
    if (stick) this.panel.scrollToEnd();
  }

  showSources(sources) {
    this.sources = sources || [];
    this.sourcesEl.replaceChildren();
    if (!this.sources.length) {
      this.sourcesEl.hidden = true;
      return;
    }
    const everyFilm = this.panel.scope === "all";
    const list = el("ol", { class: "sources-list", "aria-label": "Passages used" });
    this.sources.forEach((source, index) => {
      const label = everyFilm ? `${source.film}${source.year ? ` (${source.year})` : ""}: ${source.heading}` : source.heading;
      list.append(
        el(
          "li",
          {},
          el(
            "a",
            { class: "source", href: source.url, "data-section": source.id, title: source.snippet || label },
            el("span", { class: "n" }, String(index + 1)),
            el("span", { class: "label" }, label),
          ),
        ),
      );
    });
    this.sourcesEl.append(el("span", { class: "sources-label" }, "Sources"), list);
    this.sourcesEl.hidden = false;
    this.numberCitations();
  }

  /** Show each citation as the number of its source in the list above the answer. */
  numberCitations() {
    const order = new Map(this.sources.map((source, index) => [String(source.id), [index + 1, source]]));
    for (const link of this.body.querySelectorAll("a.cite")) {
      const found = order.get(link.dataset.section);
      if (!found) continue;
      const [number, source] = found;
      link.textContent = String(number);
      link.title = `${source.film}: ${source.heading}`;
      link.setAttribute("aria-label", `Source ${number}: ${source.film}, ${source.heading}`);
    }
  }

  /** The `done` event (or a finished message of a restored conversation). */
  finish(done) {
    const stick = this.panel.atBottom();
    this.setStatus(done.status);
    this.body.classList.remove("streaming-text");
    if (done.html) {
      this.body.innerHTML = done.html; // rendered and sanitised by the server (markdown-it + nh3)
    } else {
      this.body.replaceChildren();
    }
    this.numberCitations();
    const notes = [];
    if (done.status === "stopped") notes.push(done.html ? "Stopped before the end." : "Stopped before any text was written.");
    if (done.provider === "offline") {
      // The offline answer quotes the reports word for word: credit the text's licence where it is shown.
      const licence = el("a", { href: "https://creativecommons.org/licenses/by-sa/4.0/", rel: "license noopener" }, "CC BY-SA 4.0");
      notes.push([
        "Offline answer: no language model is configured, so these are passages quoted from the reports (Wikipedia, ",
        licence,
        ").",
      ]);
    }
    if (done.cached) notes.push("Reused answer: the same question was answered recently.");
    this.footer.replaceChildren(...notes.map((note) => el("p", { class: "msg-note" }, ...[note].flat())));
    this.addActions();
    this.panel.answerEnded(this);
    if (stick) this.panel.scrollToEnd();
  }

  /** The `error` event, a failed message of a restored conversation, or a broken connection. */
  fail(error) {
    const stick = this.panel.atBottom();
    this.setStatus("failed");
    this.body.classList.add("streaming-text");
    if (!this.shown) this.body.hidden = true;
    const box = el(
      "div",
      { class: "msg-error", role: "alert", "data-code": error.code || "" },
      el("p", {}, this.panel.errorText(error)),
    );
    const detail = error.message;
    if (detail && detail !== ERROR_TEXT[error.code]) box.append(el("p", { class: "detail" }, detail));
    if (error.retryable) {
      const retry = el("button", { type: "button", class: "button-quiet retry" }, "Retry");
      retry.addEventListener("click", () => {
        if (error.resume) {
          box.remove();
          this.body.hidden = false;
          this.panel.resume(this);
        } else {
          this.panel.regenerate(this);
        }
      });
      box.append(retry);
      this.panel.countDown(retry, error.retry_after);
    }
    this.footer.replaceChildren(box);
    this.panel.answerEnded(this);
    if (stick) this.panel.scrollToEnd();
  }

  addActions() {
    const actions = el("div", { class: "msg-actions" });
    const regenerate = el("button", { type: "button", class: "button-quiet regenerate" }, "Regenerate");
    regenerate.addEventListener("click", () => this.panel.regenerate(this));
    actions.append(regenerate);
    if (navigator.clipboard && this.body.textContent.trim()) {
      const copy = el("button", { type: "button", class: "button-quiet copy" }, "Copy");
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(this.body.innerText);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Could not copy";
        }
        setTimeout(() => {
          copy.textContent = "Copy";
        }, 2000);
      });
      actions.append(copy);
    }
    this.footer.append(actions);
  }

  /** Render a message of a restored conversation; true when it still needs its stream. */
  restore(message) {
    this.showSources(message.sources);
    if (message.status === "complete" || message.status === "stopped") {
      this.finish({ status: message.status, html: message.html, provider: message.provider, cached: message.cached });
      return false;
    }
    this.text.appendData(message.content || "");
    this.shown = charCount(message.content || "");
    if (message.status === "failed") {
      // No countdown after a reload: the wait the server asked for was counted from the failure, not from now.
      const error = message.error || { code: "internal_error" };
      this.fail({ ...error, retry_after: null });
      return false;
    }
    return true;
  }
}

class ChatPanel {
  constructor(root) {
    this.root = root;
    this.scope = root.dataset.scope;
    this.askUrl = root.dataset.askUrl;
    this.filmSlug = root.dataset.film || null;
    this.log = root.querySelector(".chat-log");
    this.empty = root.querySelector(".chat-empty");
    this.notice = root.querySelector(".chat-notice");
    this.form = root.querySelector(".chat-form");
    this.input = this.form.elements.question;
    this.sendButton = root.querySelector(".chat-send");
    this.stopButton = root.querySelector(".chat-stop");
    this.newButton = root.querySelector(".chat-new");
    this.earlierButton = root.querySelector(".chat-earlier");
    this.conversation = null;
    this.active = null; // the answer being streamed
    this.busy = false; // a question or a regeneration is on its way (no second one meanwhile)
  }

  async start() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask(this.input.value);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.ask(this.input.value);
      }
    });
    this.input.addEventListener("input", () => this.fitInput());
    this.stopButton.addEventListener("click", () => this.stop());
    this.newButton.addEventListener("click", () => this.reset());
    this.earlierButton.addEventListener("click", () => this.showEarlier());
    for (const button of this.root.querySelectorAll(".suggestion")) {
      button.addEventListener("click", () => this.ask(button.textContent));
    }
    // Citations and sources on a film page open the cited section of this page instead of reloading it.
    this.log.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-section]");
      if (link && !event.metaKey && !event.ctrlKey && !event.shiftKey && highlightSection(link.dataset.section)) {
        event.preventDefault();
      }
    });
    const id = new URLSearchParams(location.search).get("c");
    if (id && UUID.test(id)) await this.restore(id);
    this.updateControls();
  }

  // Conversation state.

  setConversation(id) {
    this.conversation = id;
    if (!id) {
      this.older = null;
      this.earlierButton.hidden = true;
    }
    const url = new URL(location.href);
    if (id) url.searchParams.set("c", id);
    else url.searchParams.delete("c");
    history.replaceState(history.state, "", url);
    this.updateControls();
  }

  reset() {
    if (this.active) return;
    this.setConversation(null);
    this.log.replaceChildren();
    this.hideNotice();
    this.updateControls();
    this.input.focus();
  }

  async restore(id) {
    this.restoring = id;
    this.restored = []; // the messages of the pages loaded so far, oldest first
    this.older = null; // the cursor of the page before them, or null at the start
    const data = await this.fetchPage();
    if (!data) return;
    if ((data.movie || null) !== this.filmSlug) {
      location.replace(data.page); // a conversation goes on on its own page (its film's, or all films')
      return;
    }
    this.setConversation(data.conversation);
    await this.showPage(data);
    this.updateControls();
    this.scrollToEnd();
  }

  /** A page of the restored conversation: the latest one, or the one before those shown; null when it failed. */
  async fetchPage() {
    const url = new URL(this.root.dataset.conversationUrl.replace("00000000-0000-0000-0000-000000000000", this.restoring), location.href);
    if (this.older) url.searchParams.set("before", this.older);
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch {
      this.showNotice("The conversation could not be loaded. Check your connection and reload the page.");
      return null;
    }
    if (!response.ok) {
      this.setConversation(null);
      this.showNotice("This conversation is not available: it was deleted, or it belongs to another account.");
      return null;
    }
    return response.json();
  }

  /** Put a page's questions, each with its latest answer, above those shown. An answer whose question is on an
   * earlier page waits for it: that page is fetched at once, so the page opens on a whole turn. */
  async showPage(data) {
    this.restored = data.messages.concat(this.restored);
    this.older = data.next;
    // Each question with its latest answer: a regenerated answer takes the place of the one it replaced.
    const answers = new Map();
    for (const message of this.restored) {
      if (message.role === "assistant" && !message.replaced) answers.set(message.reply_to, message);
    }
    const turns = document.createDocumentFragment();
    const unfinished = [];
    for (const message of data.messages) {
      if (message.role !== "user") continue;
      turns.append(this.questionBubble(message.content));
      const reply = answers.get(message.id);
      if (!reply) continue;
      const answer = new Answer(this, { message: reply.id, ...reply });
      turns.append(answer.el);
      if (answer.restore(reply)) unfinished.push(answer);
    }
    const height = this.log.scrollHeight;
    this.log.prepend(turns);
    this.log.scrollTop += this.log.scrollHeight - height; // what was in view stays in view
    for (const answer of unfinished) answer.stream(answer.shown);
    if (unfinished.length && !this.active) this.active = unfinished.at(-1);
    this.earlierButton.hidden = !this.older;
    const loaded = new Set(this.restored.map((message) => message.id));
    const waiting = this.restored.some((m) => m.role === "assistant" && !m.replaced && !loaded.has(m.reply_to));
    if (waiting && this.older) await this.showEarlier();
  }

  async showEarlier() {
    if (!this.older || this.earlierButton.disabled) return;
    this.earlierButton.disabled = true;
    const data = await this.fetchPage();
    this.earlierButton.disabled = false;
    if (data) await this.showPage(data);
    this.updateControls();
  }

  // Turns.

  async ask(raw) {
    const question = raw.trim();
    if (!question || this.busy || this.active) return;
    this.hideNotice();
    this.busy = true;
    this.updateControls();
    const bubble = this.addQuestion(question);
    this.input.value = "";
    this.fitInput();
    const data = { question };
    if (this.conversation) data.conversation = this.conversation;
    const result = await post(this.askUrl, data);
    this.busy = false;
    if (result.status === 201) {
      this.setConversation(result.body.conversation);
      this.begin(new Answer(this, result.body));
      this.log.append(this.active.el);
      this.scrollToEnd();
      return;
    }
    // Nothing was stored: give the question back, to edit it or send it again.
    bubble.remove();
    if (!this.input.value) this.input.value = question;
    this.fitInput();
    if (result.status === 404 && this.conversation) {
      this.log.replaceChildren();
      this.setConversation(null);
      this.showNotice("This conversation no longer exists. Send the question again to start a new one.");
    } else {
      const error = result.body?.error || { code: result.status === 0 ? "network" : "internal_error" };
      const retryable = result.status === 0 || result.status === 429 || result.status >= 500;
      this.showNotice(this.errorText({ ...error, retry_after: result.retryAfter }), {
        retry: retryable ? () => this.ask(question) : null,
        wait: result.retryAfter,
      });
    }
    this.updateControls();
  }

  begin(answer) {
    this.active = answer;
    answer.stream();
    this.updateControls();
  }

  async regenerate(old) {
    if (this.busy || this.active) return;
    this.hideNotice();
    this.busy = true;
    this.updateControls();
    const result = await post(old.urls.regenerate);
    this.busy = false;
    if (result.status === 201) {
      const answer = new Answer(this, result.body);
      old.el.replaceWith(answer.el);
      this.begin(answer);
      return;
    }
    const error = result.body?.error || { code: result.status === 0 ? "network" : "internal_error" };
    this.showNotice(this.errorText({ ...error, retry_after: result.retryAfter }), {
      retry: result.status === 0 || result.status === 429 || result.status >= 500 ? () => this.regenerate(old) : null,
      wait: result.retryAfter,
    });
    this.updateControls();
  }

  /** Reopen a broken stream after the text already shown. */
  resume(answer) {
    if (this.active) return;
    this.active = answer;
    answer.stream(answer.shown);
    this.updateControls();
  }

  async stop() {
    const answer = this.active;
    if (!answer) return;
    this.stopButton.disabled = true;
    await post(answer.urls.stop);
    // The stream ends itself with `done` (status "stopped"); if it does not come, end the answer here.
    answer.stopTimer = setTimeout(() => {
      if (this.active === answer) {
        answer.close();
        answer.finish({ status: "stopped", html: null });
      }
    }, STOP_GRACE_MS);
  }

  answerEnded(answer) {
    if (this.active === answer) this.active = null;
    this.updateControls();
  }

  // Display.

  questionBubble(text) {
    return el("article", { class: "msg msg-user" }, el("span", { class: "msg-who" }, "You"), el("p", { class: "msg-text" }, text));
  }

  addQuestion(text) {
    const bubble = this.questionBubble(text);
    this.log.append(bubble);
    this.updateControls();
    this.scrollToEnd();
    return bubble;
  }

  updateControls() {
    const streaming = Boolean(this.active);
    this.sendButton.disabled = this.busy || streaming;
    this.stopButton.hidden = !streaming;
    this.stopButton.disabled = false;
    this.newButton.hidden = !this.conversation || streaming;
    this.empty.hidden = this.log.children.length > 0;
    for (const button of this.log.querySelectorAll(".regenerate, .retry")) {
      if (!button.dataset.waiting) button.disabled = this.busy || streaming;
    }
  }

  errorText(error) {
    if (error.code === "rate_limited") {
      const wait = Math.ceil(Number(error.retry_after) || 0);
      return wait > 0 ? `Too many questions right now. Try again in ${wait} s.` : "Too many questions right now. Try again shortly.";
    }
    return errorMessage(error.code, error.message);
  }

  showNotice(text, { retry = null, wait = null } = {}) {
    this.notice.replaceChildren(el("span", {}, text));
    if (retry) {
      const button = el("button", { type: "button", class: "button-quiet retry" }, "Retry");
      button.addEventListener("click", () => {
        this.hideNotice();
        retry();
      });
      this.notice.append(button);
      this.countDown(button, wait);
    }
    this.notice.hidden = false;
  }

  hideNotice() {
    this.notice.hidden = true;
    this.notice.replaceChildren();
  }

  /** Keep a Retry button disabled, counting down, for the seconds the server asked us to wait. */
  countDown(button, seconds) {
    let left = Math.ceil(Number(seconds) || 0);
    if (left <= 0) return;
    const label = button.textContent;
    button.disabled = true;
    button.dataset.waiting = "1";
    const tick = () => {
      if (left <= 0) {
        delete button.dataset.waiting;
        button.textContent = label;
        button.disabled = this.busy || Boolean(this.active);
        return;
      }
      button.textContent = `${label} (${left} s)`;
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }

  atBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48;
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  fitInput() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 192)}px`;
  }
}

// A link from elsewhere (the all-films chat, a shared URL) to a section of this film page.
function highlightFromHash() {
  const match = location.hash.match(/^#section-(\d+)$/);
  if (match) highlightSection(match[1]);
}
window.addEventListener("hashchange", highlightFromHash);
highlightFromHash();

const root = document.querySelector("[data-chat]");
if (root) new ChatPanel(root).start();
