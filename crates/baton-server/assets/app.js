// baton dashboard: runs, a board and a graph of the selected run's tasks, a
// task's live transcript and diff, and the actions a person takes (stop,
// steer, approve, retry, add). Plain ES modules, no build step; the server
// embeds this file. Live updates come from /api/events (SSE).

const $ = (id) => document.getElementById(id);

const ATTENTION_KINDS = new Set(['question_asked', 'approval_needed', 'failed', 'conflicted', 'stalled']);
const COLUMNS = [
  { key: 'pending', title: 'Pending' },
  { key: 'running', title: 'Running' },
  { key: 'needs', title: 'Needs you' },
  { key: 'done', title: 'Done' },
  { key: 'other', title: 'Other' },
];
// Task events after which the task's diff may have changed.
const DIFF_KINDS = new Set(['committed', 'merged', 'attempt_failed', 'succeeded', 'failed',
  'stopped', 'conflicted', 'approval_needed']);

const S = {
  runs: [],
  runId: null,
  runPicked: false, // the user chose a run: do not follow the newest one
  report: null,
  taskId: null,
  attempts: [],
  events: [],
  seqs: new Set(),
  tab: 'transcript',
  token: null,
  lastSeq: null,
  es: null,
  sseFailed: false,
  loadedAt: Date.now(),
  notified: new Set(),
  dismissed: '',
  inbox: [],
  // The planner's run whose plan the proposal panel shows.
  proposalRun: null,
  // A race's candidates' diffs, by candidate and commit.
  diffs: new Map(),
  // The repositories this server serves, the one shown, and its API root.
  repos: [],
  repo: null,
  api: '/api',
  // Bumped at each switch of repository: answers of an earlier one are dropped.
  gen: 0,
};

// ---------- helpers ----------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const kid of kids.flat(Infinity)) if (kid != null) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

function toMs(t) {
  if (t == null || t === '') return null;
  if (typeof t === 'number') return t < 1e12 ? t * 1000 : t; // seconds or ms
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

function fmtDur(ms) {
  if (ms == null || ms < 0) return '';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function fmtWhen(t) {
  const ms = toMs(t);
  if (ms == null) return '';
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function fmtClock(ms) {
  return ms == null ? '' : new Date(ms).toLocaleTimeString([], { hour12: false });
}

const fmtCost = (c) => (c == null ? '' : `$${Number(c).toFixed(c >= 1 ? 2 : 4)}`);
const fmtNum = (n) => (n == null ? '–' : Number(n).toLocaleString());
const short = (s, n = 10) => (s ? String(s).slice(0, n) : '');
const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const enc = encodeURIComponent;
const runPath = () => `${S.api}/runs/${enc(S.runId)}`;
const taskPath = (id = S.taskId) => `${runPath()}/tasks/${enc(id)}`;

// Coalesces calls: at most one run of fn at a time, another after it if
// called meanwhile. fn(true) runs now; the promise settles once a run that
// started after the call has finished.
function debounce(fn, ms) {
  let timer = null;
  let running = false;
  let waiters = [];
  const run = async () => {
    clearTimeout(timer);
    timer = null;
    if (running) return;
    running = true;
    const mine = waiters;
    waiters = [];
    try { await fn(); } catch (e) { showError(e); }
    running = false;
    mine.forEach((resolve) => resolve());
    if (waiters.length) run();
  };
  return (now) => new Promise((resolve) => {
    waiters.push(resolve);
    if (running) return;
    if (now) run();
    else if (!timer) timer = setTimeout(run, ms);
  });
}

// ---------- HTTP ----------

class HttpError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** An answer about a repository no longer shown (the page switched while
 * it was on its way): dropped, not drawn. */
class Stale extends Error {}

async function api(path, { method, body, text, anyRepo } = {}) {
  const gen = S.gen;
  // anyRepo: a caller that keeps what it asked of a repository whichever is shown.
  const shown = !anyRepo && path.startsWith(`${S.api}/`);
  const init = { method: method || (body === undefined ? 'GET' : 'POST'), headers: {}, credentials: 'same-origin' };
  if (S.token) init.headers.Authorization = `Bearer ${S.token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    showLogin();
    throw new HttpError(401, 'sign in first');
  }
  const raw = await res.text();
  let data = raw;
  if (!text && (res.headers.get('content-type') || '').includes('json')) {
    try { data = JSON.parse(raw); } catch { /* keep the text */ }
  }
  if (shown && gen !== S.gen) throw new Stale('another repository is shown now');
  if (!res.ok) {
    const msg = (data && typeof data === 'object' && (data.error || data.message)) || raw || res.statusText;
    throw new HttpError(res.status, msg, data);
  }
  return data;
}

function showError(e) {
  if (e instanceof HttpError && e.status === 401) return;
  if (e instanceof Stale) return;
  console.error(e);
  toast(`Error: ${e.message || e}`, 'error');
}

// ---------- sign in ----------

function showLogin() {
  $('login').hidden = false;
  $('app').hidden = true;
  if (S.es) { S.es.close(); S.es = null; }
  setConn('signed out', 'bad');
}

async function login(token) {
  const res = await fetch('/api/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: '{}',
  });
  if (!res.ok) throw new Error(res.status === 401 ? 'that token was not accepted' : `sign in failed (${res.status})`);
  S.token = token;
  $('login').hidden = true;
  $('app').hidden = false;
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('login-error');
  err.hidden = true;
  try {
    await login($('login-token').value.trim());
    $('login-token').value = '';
    await start();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
});

// ---------- data ----------

const refreshRuns = debounce(async () => {
  const { runs } = await api(S.api + '/runs');
  S.runs = runs || [];
  const known = S.runs.some((r) => r.id === S.runId);
  const newest = S.runs[0] ? S.runs[0].id : null;
  if (!known || (!S.runPicked && newest !== S.runId)) {
    if (!known) S.runPicked = false;
    if (newest !== S.runId) await selectRun(newest, false);
  }
  renderRuns();
  renderAttention();
  refreshStats().catch(() => {});
}, 300);

/** The scorecard: how each profile has done here (`baton stats`). */
async function refreshStats() {
  const { lines } = await api(S.api + '/stats?since=30d');
  const panel = $('stats-panel');
  panel.hidden = !(lines || []).length;
  if (panel.hidden) return;
  const head = h('tr', {}, ...['profile', 'tasks', 'first try', 'retried', 'failed', 'time', 'cost', 'won–lost']
    .map((c) => h('th', c === 'won–lost' ? { title: 'races won and lost as a candidate' } : {}, c)));
  const rows = lines.map((l) => h('tr', { 'data-profile': l.name },
    h('td', {}, l.name), h('td', {}, String(l.tasks)), h('td', {}, String(l.first_try)),
    h('td', {}, String(l.after_retries)), h('td', {}, String(l.failed)),
    h('td', { title: 'mean (p90)' }, l.mean_ms == null ? '-' : `${fmtDur(l.mean_ms)} (${fmtDur(l.p90_ms)})`),
    h('td', {}, l.mean_cost_usd == null ? '-' : `$${l.mean_cost_usd.toFixed(2)}`),
    h('td', { title: 'races won and lost as a candidate' }, l.wins || l.losses ? `${l.wins}–${l.losses}` : '-')));
  $('stats').replaceChildren(head, ...rows);
}

const refreshReport = debounce(async () => {
  if (!S.runId) { S.report = null; renderRun(); return; }
  const id = S.runId;
  const rep = await api(runPath());
  if (id !== S.runId) return;
  const before = S.report && task(S.taskId);
  S.report = rep;
  // The run list's line for this run may be older than the report.
  const line = S.runs.find((r) => r.id === id);
  if (!line || line.status !== rep.status || (rep.live !== undefined && line.live !== rep.live)) refreshRuns();
  renderRun();
  if (S.taskId) {
    const now = task(S.taskId);
    renderDetail();
    if (now && (!before || before.status !== now.status || before.attempts !== now.attempts)) {
      refreshTask();
      refreshDiff();
    }
  }
}, 120);

const refreshTask = debounce(async () => {
  if (!S.taskId) return;
  const id = S.taskId;
  const t = await api(taskPath());
  if (id !== S.taskId) return;
  S.attempts = t.attempts || [];
  renderAttempts();
}, 200);

const refreshDiff = debounce(async () => {
  if (!S.taskId) return;
  const id = S.taskId;
  let text;
  try {
    text = await api(`${taskPath()}/diff`, { text: true });
  } catch (e) {
    if (e.status === 401) return;
    text = `(no diff: ${e.message})`;
  }
  let review = [];
  try { review = (await api(`${taskPath()}/review`)).comments || []; } catch { /* the diff alone */ }
  if (id !== S.taskId) return;
  S.review = review;
  S.diffText = text;
  renderDiff(text);
}, 400);

async function loadTranscript() {
  const id = S.taskId;
  const { events } = await api(`${taskPath()}/transcript`);
  if (id !== S.taskId) return;
  for (const ev of events || []) addEvent(ev);
  renderTranscript();
}

async function refreshAll() {
  refreshInbox(true);
  await refreshRuns(true);
  await refreshReport(true);
  if (S.taskId) {
    S.events = [];
    S.seqs.clear();
    await Promise.all([loadTranscript(), refreshTask(true), refreshDiff(true)]);
  }
}

const task = (id) => (S.report && S.report.tasks || []).find((t) => t.id === id) || null;

async function selectRun(id, picked = true) {
  if (picked) S.runPicked = true;
  if (id === S.runId) return;
  S.runId = id;
  S.report = null;
  closeTask();
  renderRuns();
  renderRun();
  if (id) await refreshReport(true);
}

async function selectTask(id) {
  S.taskId = id;
  S.events = [];
  S.seqs.clear();
  S.attempts = [];
  $('action-status').textContent = '';
  $('transcript').replaceChildren();
  $('diff').replaceChildren();
  $('detail').hidden = false;
  document.body.classList.add('detail-open');
  renderBoardSelection();
  renderDetail();
  await Promise.all([loadTranscript(), refreshTask(true), refreshDiff(true)]).catch(showError);
}

function closeTask() {
  S.taskId = null;
  $('detail').hidden = true;
  document.body.classList.remove('detail-open');
  renderBoardSelection();
}

// ---------- live events ----------

function connect() {
  if (S.es) S.es.close();
  const url = S.lastSeq != null ? `${S.api}/events?after=${S.lastSeq}` : S.api + '/events';
  const es = new EventSource(url);
  S.es = es;
  es.onopen = () => {
    setConn('live', 'ok');
    // Whatever happened between the first load and this connection (or
    // during a gap longer than the server replays) is read again.
    S.sseFailed = false;
    refreshAll().catch(showError);
  };
  es.onerror = () => {
    S.sseFailed = true;
    setConn('reconnecting', 'bad');
    // The browser gave up (an HTTP error): check sign-in, then start over.
    if (es.readyState === EventSource.CLOSED && S.es === es) reconnectLater(es);
  };
  const handle = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    const seq = Number(m.lastEventId || ev.seq);
    if (!Number.isNaN(seq)) S.lastSeq = S.lastSeq == null ? seq : Math.max(S.lastSeq, seq);
    onEvent(ev);
  };
  es.addEventListener('baton', handle);
  es.onmessage = handle;
  es.addEventListener('resync', () => refreshAll().catch(showError));
}

function reconnectLater(es) {
  setTimeout(async () => {
    if (S.es !== es) return;
    try {
      await api(S.api + '/runs');
      connect();
    } catch (e) {
      if (!(e instanceof HttpError && e.status === 401)) reconnectLater(es);
    }
  }, 3000);
}

function onEvent(ev) {
  if (INBOX_KINDS.has(ev.kind)) refreshInbox();
  if (!S.runs.some((r) => r.id === ev.run_id) || ev.task_id == null) refreshRuns();
  if (ev.run_id === S.runId) {
    refreshReport();
    if (ev.task_id && ev.task_id === S.taskId) {
      if (addEvent(ev)) renderTranscript();
      if (DIFF_KINDS.has(ev.kind)) refreshDiff();
      if (ev.kind === 'attempt_started' || ev.kind === 'usage') refreshTask();
    }
  }
  if (ev.task_id && ATTENTION_KINDS.has(ev.kind)) alertPerson(ev);
  if (ev.kind === 'run_finished' || ev.kind === 'merged') refreshRuns();
}

function addEvent(ev) {
  if (ev.seq != null && S.seqs.has(ev.seq)) return false;
  if (ev.seq != null) S.seqs.add(ev.seq);
  S.events.push(ev);
  return true;
}

function setConn(text, cls) {
  const c = $('conn');
  c.textContent = text;
  c.className = `conn ${cls || ''}`;
}

// ---------- attention: banner, toast, notifications ----------

const ATTN_WORDS = { question: 'asks a question', approval: 'waits for your approval', failed: 'failed', conflicted: 'has a merge conflict', stalled: 'seems stalled' };
// Events after which the inbox may have changed.
const INBOX_KINDS = new Set(['question_asked', 'question_answered', 'question_expired', 'approval_needed', 'approved',
  'failed', 'conflicted', 'succeeded', 'stopped', 'merged', 'merge_queued', 'retry_requested', 'waiting',
  'attempt_started', 'pull_needs_you', 'run_finished', 'task_started', 'plan_decided']);
const KIND_ATTN = { question_asked: 'question', approval_needed: 'approval', failed: 'failed', conflicted: 'conflicted', stalled: 'stalled' };

function attentionOf(t, live) {
  if (t.attention !== undefined) return t.attention;
  if (t.activity === 'waiting_answer') return 'question';
  if (t.status === 'awaiting_approval') return 'approval';
  if (t.status === 'running' && t.activity === 'stalled') return 'stalled';
  if (live && (t.status === 'failed' || t.status === 'conflicted')) return t.status;
  return null;
}

// Everything that needs a person, in every repository this server serves.
const refreshInbox = debounce(async () => {
  const repos = S.repos.length ? S.repos : [{ name: null, api: S.api }];
  const lists = await Promise.all(repos.map(async (r) => {
    const { items } = await api(`${r.api}/inbox`, { anyRepo: true });
    return (items || []).map((i) => ({ ...i, repo: r.name, api: r.api }));
  }));
  S.inbox = lists.flat();
  renderAttention();
}, 250);

/** An inbox item's id on the page (ids are each repository's own). */
const itemKey = (i) => (S.repos.length > 1 ? `${i.repo}-${i.id}` : String(i.id));

/** The inbox (everything that needs a person, across runs) with its
 * actions inline, and the current run's stalled tasks. */
function renderAttention() {
  const box = $('attention');
  const inbox = S.inbox || [];
  const stalled = ((S.report && S.report.tasks) || []).filter((t) => attentionOf(t, false) === 'stalled');
  const n = inbox.length + stalled.length;
  document.title = inbox.length ? `(${inbox.length}) baton` : 'baton';
  if (navigator.setAppBadge) {
    (inbox.length ? navigator.setAppBadge(inbox.length) : navigator.clearAppBadge()).catch(() => {});
  }
  const key = inbox.map(itemKey).concat(stalled.map((t) => `s:${t.id}`)).join('|');
  if (!n || key === S.dismissed) { box.hidden = true; return; }
  const go = (run, taskId, repo) => async () => {
    if (repo && S.repo && repo !== S.repo.name) await switchRepo(repo);
    if (run && run !== S.runId) await selectRun(run);
    if (taskId) selectTask(taskId);
  };
  const where = (i) => (S.repos.length > 1 ? `${i.repo}: ` : '');
  box.replaceChildren(
    h('strong', { 'data-testid': 'inbox-count' }, n === 1 ? 'Needs you:' : `${n} need you:`),
    h('ul', { class: 'attn-items', 'data-testid': 'inbox' },
      inbox.map((i) => h('li', { class: `inbox-item attn-${i.kind}`, 'data-testid': `inbox-item-${itemKey(i)}` },
        h('button', { type: 'button', class: `attn attn-${i.kind}`, onclick: i.kind === 'plan' ? async () => { await go(null, null, i.repo)(); openProposal(i.run); } : go(i.run, i.task, i.repo) },
          where(i) + (i.task ? `${i.task}: ${itemWords(i)}` : itemWords(i))),
        h('span', { class: 'inbox-actions' }, itemActions(i)))),
      stalled.map((t) => h('li', { class: 'inbox-item' },
        h('button', { type: 'button', class: 'attn attn-stalled', onclick: go(S.runId, t.id) }, `${t.id} ${ATTN_WORDS.stalled}`)))),
    h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss', onclick: () => { S.dismissed = key; box.hidden = true; } }, '×'),
  );
  box.hidden = false;
}

function itemWords(i) {
  if (i.kind === 'question') return `asks: ${i.text}`;
  if (i.kind === 'approval') return ATTN_WORDS.approval;
  return i.text;
}

/** Buttons for what a person can do to item `i` right here. */
function itemActions(i) {
  const status = h('span', { class: 'note', role: 'status', 'data-testid': `inbox-status-${itemKey(i)}` });
  const act = (action, body) => async (e) => {
    if (e) e.preventDefault();
    status.textContent = '…';
    try {
      const r = await api(`${i.api || S.api}/inbox/${i.id}/${action}`, { method: 'POST', body: body || {} });
      status.textContent = r.message || 'done';
      refreshInbox();
      refreshReport();
    } catch (err) {
      status.textContent = err.message;
    }
  };
  const out = [];
  if (i.actions.includes('answer')) {
    if (i.options && i.options.length) {
      for (const o of i.options) {
        out.push(h('button', { type: 'button', class: 'primary', 'data-testid': `inbox-answer-${itemKey(i)}-${o}`, onclick: act('answer', { text: o }) }, o));
      }
    } else {
      const input = h('input', { 'data-testid': `inbox-text-${itemKey(i)}`, placeholder: 'your answer', 'aria-label': `answer to ${i.text}`, required: true });
      out.push(h('form', { class: 'inbox-answer', onsubmit: (e) => act('answer', { text: input.value })(e) },
        input, h('button', { type: 'submit', class: 'primary', 'data-testid': `inbox-send-${itemKey(i)}` }, 'Send')));
    }
  }
  if (i.actions.includes('approve')) out.push(h('button', { type: 'button', class: 'primary', 'data-testid': `inbox-approve-${itemKey(i)}`, onclick: act('approve') }, i.kind === 'plan' ? 'Run it' : 'Approve'));
  if (i.actions.includes('discard')) out.push(h('button', { type: 'button', 'data-testid': `inbox-discard-${itemKey(i)}`, onclick: act('discard') }, 'Discard'));
  if (i.actions.includes('retry')) out.push(h('button', { type: 'button', 'data-testid': `inbox-retry-${itemKey(i)}`, onclick: act('retry') }, 'Retry'));
  out.push(status);
  return out;
}

function alertPerson(ev) {
  // Events replayed from before the page loaded are not news.
  if (ev.ts != null && toMs(ev.ts) < S.loadedAt - 5000) return;
  const key = `${ev.run_id}/${ev.task_id}/${ev.kind}/${ev.attempt}`;
  if (S.notified.has(key)) return;
  S.notified.add(key);
  const a = KIND_ATTN[ev.kind];
  let text = `${ev.task_id} ${ATTN_WORDS[a] || ev.kind}`;
  const reason = ev.data && ev.data.reason;
  if (reason) text += `: ${reason}`;
  S.dismissed = '';
  toast(text, 'attn', () => selectRun(ev.run_id).then(() => selectTask(ev.task_id)));
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      const n = new Notification(`baton: ${ev.task_id}`, { body: text, tag: key });
      n.onclick = () => { window.focus(); selectRun(ev.run_id).then(() => selectTask(ev.task_id)); };
    } catch { /* some browsers only notify from a service worker */ }
  }
}

let toastTimer = null;
function toast(text, cls, onclick) {
  const t = $('toast');
  t.replaceChildren(onclick ? h('button', { type: 'button', onclick: () => { t.hidden = true; onclick(); } }, text) : text);
  t.className = `toast ${cls || ''}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 8000);
}

function setupNotifications() {
  const b = $('btn-notify');
  if (!('Notification' in window)) return;
  const show = () => {
    b.hidden = Notification.permission === 'granted';
    b.disabled = Notification.permission === 'denied';
    b.textContent = b.disabled ? 'Notifications blocked' : 'Enable notifications';
  };
  b.addEventListener('click', async () => {
    await Notification.requestPermission();
    show();
    if (Notification.permission === 'granted') {
      try { await subscribePush(); } catch (e) { toast(`Web Push is not available here (${e.message}); this page notifies while it is open`, 'attn'); }
    }
  });
  show();
  // The service worker shows pushed notifications even with the page closed.
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
}

/** Subscribes this browser to Web Push with the server's VAPID key. */
async function subscribePush() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) throw new Error('no Push API');
  const reg = await navigator.serviceWorker.register('/sw.js');
  await navigator.serviceWorker.ready;
  const { public_key } = await api(S.api + '/push/key');
  const key = Uint8Array.from(atob(public_key.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  let sub = await reg.pushManager.getSubscription();
  // A subscription made with another key (the server's was remade) is
  // refused by the push service: made again with this one.
  const same = (k) => k && k.byteLength === key.byteLength && new Uint8Array(k).every((b, i) => b === key[i]);
  if (sub && !same(sub.options && sub.options.applicationServerKey)) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  // Each repository keeps its own subscribers (one key for them all).
  const repos = S.repos.length ? S.repos : [{ api: S.api }];
  await Promise.all(repos.map((r) => api(`${r.api}/push/subscriptions`, { method: 'POST', body: sub.toJSON() })));
}

// ---------- rendering: runs ----------

function renderRuns() {
  const list = $('runs');
  if (!S.runs.length) { list.replaceChildren(h('li', { class: 'empty' }, 'No runs yet.')); return; }
  list.replaceChildren(...S.runs.map((r) => {
    const c = r.counts || {};
    const need = (c.awaiting_approval || 0) + (c.failed || 0) + (c.conflicted || 0);
    return h('li', {},
      h('button', {
        type: 'button',
        class: `run${r.id === S.runId ? ' selected' : ''}`,
        'data-run': r.id,
        'aria-current': r.id === S.runId ? 'true' : null,
        onclick: () => selectRun(r.id).catch(showError),
      },
      h('span', { class: 'run-top' },
        h('span', { class: 'run-id' }, r.id),
        h('span', { class: `pill st-${r.status}` }, r.live && r.status === 'running' ? 'live' : r.status)),
      h('span', { class: 'run-sub' },
        [r.plan || 'added tasks', fmtWhen(r.started_at),
          `${c.succeeded || 0}/${Object.values(c).reduce((a, b) => a + b, 0)} done`,
          need ? `${need} need you` : null].filter(Boolean).join(' · '))));
  }));
}

// ---------- where work comes in: sources, schedules, hooks ----------

async function refreshIncoming() {
  renderIncoming(await api(S.api + '/incoming'));
}

/** A button that opens `run` (and `task`) on the board. */
function openLink(label, run, task) {
  if (!run) return h('span', {}, label);
  return h('button', { type: 'button', class: 'link', onclick: async () => {
    await selectRun(run);
    if (task) await selectTask(task);
  } }, label);
}

function renderIncoming(d) {
  const panel = $('incoming-panel');
  const parts = [];
  if (d.error) parts.push(h('p', { class: 'note error' }, `No work comes in: ${d.error}`));
  for (const s of d.sources || []) {
    parts.push(h('h3', {}, `${s.name} · ${s.mode === 'plan' ? 'planned' : 'tasks'} · every ${s.poll_s}s`));
    parts.push(h('ul', { 'data-testid': `source-${s.kind}` },
      (s.items.length ? s.items : [null]).map((i) => i
        ? h('li', {}, openLink(`${i.item} ${i.title}`, i.run, i.task), ` · ${i.reported ? 'reported' : 'open'}`)
        : h('li', { class: 'empty' }, 'nothing taken yet'))));
  }
  if ((d.schedules || []).length) {
    parts.push(h('h3', {}, 'Schedules'));
    parts.push(h('ul', { 'data-testid': 'schedules' }, d.schedules.map((s) => h('li', { 'data-schedule': s.name },
      h('code', {}, s.name), ` ${s.cron} · ${s.starts} · next ${s.next_at ? fmtWhen(s.next_at) : 'never'}`,
      s.last_run ? [' · last ', openLink(s.last_run, s.last_run, s.last_task)] : null))));
  }
  if ((d.hooks || []).length) {
    parts.push(h('h3', {}, 'Hooks'));
    parts.push(h('ul', { 'data-testid': 'hooks' }, d.hooks.map((k) => h('li', {},
      h('code', {}, `POST ${k.path}`), ` · ${k.auth} · ${k.starts}`))));
  }
  panel.hidden = parts.length === 0;
  $('incoming').replaceChildren(...parts);
}

// ---------- rendering: run header, board, graph ----------

function columnOf(t) {
  const a = attentionOf(t, true);
  if (t.status === 'awaiting_approval' || t.status === 'failed' || t.status === 'conflicted' || a === 'stalled' || a === 'question') return 'needs';
  if (t.status === 'running' || t.status === 'merging') return 'running';
  if (t.status === 'pending') return 'pending';
  if (t.status === 'succeeded') return 'done';
  return 'other';
}

function elapsedOf(t) {
  const start = toMs(t.started_at_ms);
  if ((t.status === 'running' || t.status === 'merging') && start) return Date.now() - start;
  return t.duration_ms;
}

function renderRun() {
  renderHead();
  renderBoard();
  renderDag();
  renderAttention();
}

function renderHead() {
  const r = S.report;
  const head = $('run-head');
  if (!r) {
    head.replaceChildren(h('p', { class: 'empty' }, S.runId ? 'Loading…' : 'No run selected. Start one with baton run, or add a task.'));
    return;
  }
  const u = r.usage || {};
  const live = r.live !== undefined ? r.live : (S.runs.find((x) => x.id === r.run) || {}).live;
  head.replaceChildren(
    h('h2', {}, 'Run ', h('code', {}, r.run), ' ', h('span', { class: `pill st-${r.status}` }, r.status), live ? h('span', { class: 'pill live' }, 'live') : null),
    h('p', { class: 'run-meta' }, [
      r.plan && `plan ${r.plan}`,
      r.integration_branch && `branch ${r.integration_branch}`,
      r.started_at && `started ${fmtWhen(r.started_at)}`,
      r.duration_ms != null && `took ${fmtDur(r.duration_ms)}`,
      (u.input_tokens != null || u.output_tokens != null) && `${fmtNum(u.input_tokens)} in / ${fmtNum(u.output_tokens)} out tokens`,
      u.cost_usd != null && fmtCost(u.cost_usd),
    ].filter(Boolean).join(' · ')),
    ...[pullLine(r.pull)].filter(Boolean),
  );
}

/** Where the run's pull request stands (`[land] follow`), if it has one. */
function pullLine(p) {
  if (!p) return null;
  const safe = /^https?:\/\//.test(p.url) ? p.url : null;
  return h('p', { class: 'run-meta', 'data-testid': 'run-pull' },
    h('a', { href: safe, target: '_blank', rel: 'noopener' }, `pull request #${p.number}`), ' ',
    h('span', { class: `pill pull-${p.status}` }, p.status.replace('_', ' ')),
    ' ', [p.checks && `checks: ${p.checks}`, p.reviews && `reviews: ${p.reviews}`,
      `fixes used: ${p.fixes_used}`, p.note].filter(Boolean).join(' · '));
}

function renderBoard() {
  const board = $('board');
  const tasks = (S.report && S.report.tasks) || [];
  const cols = Object.fromEntries(COLUMNS.map((c) => [c.key, []]));
  for (const t of tasks) cols[columnOf(t)].push(t);
  board.replaceChildren(...COLUMNS.map((c) => h('section', { class: `col col-${c.key}`, 'data-col': c.key },
    h('h3', {}, c.title, h('span', { class: 'count' }, cols[c.key].length)),
    cols[c.key].length ? cols[c.key].map(card) : h('p', { class: 'empty' }, '—'))));
  renderBoardSelection();
}

function card(t) {
  const a = attentionOf(t, true);
  const running = t.status === 'running' || t.status === 'merging';
  const cost = t.usage && t.usage.cost_usd;
  return h('article', {
    class: `card st-${t.status}${a ? ` attn-${a}` : ''}`,
    'data-testid': `task-card-${t.id}`,
    'data-state': t.status,
    'data-task': t.id,
    tabindex: 0,
    role: 'button',
    'aria-label': `task ${t.id}, ${t.status}`,
    onclick: () => selectTask(t.id),
    onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectTask(t.id); } },
  },
  h('div', { class: 'card-id' }, t.id),
  h('div', { class: 'card-sub' },
    h('span', { class: `pill st-${t.status}` }, t.status.replace('_', ' ')),
    t.candidate_of ? candidateTag(t) : null,
    t.candidates ? h('span', { class: 'tag' }, `race of ${t.candidates.length}`) : null,
    t.agent ? h('span', {}, t.agent) : null,
    (running || t.activity === 'waiting_memory') && t.activity ? h('span', { class: `activity act-${t.activity}` }, t.activity.replace(/_/g, ' ')) : null),
  t.conflict_ahead && t.conflict_ahead.length
    ? h('div', { class: 'card-warn', title: t.conflict_ahead.join(', ') }, `conflict ahead: ${t.conflict_ahead.join(', ')}`) : null,
  h('div', { class: 'card-foot' },
    h('span', {}, `attempt ${t.attempts || 0}`),
    h('span', { class: 'elapsed', 'data-start': running ? toMs(t.started_at_ms) : null }, fmtDur(elapsedOf(t))),
    cost != null ? h('span', {}, fmtCost(cost)) : null));
}

/** What a candidate's card says of it: whose candidate it is, and whether it won. */
function candidateTag(t) {
  const race = task(t.candidate_of);
  const me = race && race.candidates && race.candidates.find((c) => c.task === t.id);
  if (me && me.winner) return h('span', { class: 'tag tag-won', 'data-testid': `won-${t.id}` }, `won ${t.candidate_of}`);
  return h('span', { class: 'tag' }, `candidate of ${t.candidate_of}`);
}

/** A race's candidates side by side: each one's figures, its diff, and a
 * button that makes it the winner while the race waits for approval. */
function renderCandidates() {
  const t = S.taskId && task(S.taskId);
  const tab = document.querySelector('[data-tab="candidates"]');
  const list = (t && t.candidates) || [];
  tab.hidden = !list.length;
  if (!list.length) { if (S.tab === 'candidates') showTab('transcript'); return; }
  const canPick = t.status === 'awaiting_approval';
  // Drawn again only when something shown changed: a redraw would reset
  // the diffs' scroll and could swallow a click on "Pick this one".
  const shown = JSON.stringify([t.id, t.status, t.pick_reason, list,
    list.map((c) => S.diffs.get(diffKey(c)) ?? null)]);
  if ($('candidates').dataset.shown === shown) return;
  $('candidates').dataset.shown = shown;
  const figures = (c) => [
    ['agent', c.agent],
    ['place', c.place],
    ['score', c.score],
    ['diff', c.diff_lines != null ? `${c.diff_lines} line${c.diff_lines === 1 ? '' : 's'}` : null],
    ['failed gates', c.gate_failures],
    ['cost', fmtCost(c.cost_usd) || null],
    ['time', c.time_ms != null ? fmtDur(c.time_ms) : null],
    ['note', c.note],
  ].filter(([, v]) => v != null && v !== '');
  $('candidates').replaceChildren(
    h('p', { class: 'note reason', 'data-testid': 'pick-reason' }, t.pick_reason || 'Not picked yet: the race waits for its candidates.'),
    ...list.map((c) => h('section', { class: `candidate${c.winner ? ' winner' : ''}`, 'data-candidate': c.task },
      h('h3', {}, h('code', {}, c.task), ' ', c.winner ? h('span', { class: 'tag tag-won' }, 'winner') : h('span', { class: `pill st-${c.status}` }, c.status)),
      h('dl', {}, figures(c).map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])),
      h('button', {
        type: 'button', 'data-testid': `pick-${c.task}`,
        disabled: !(canPick && c.status === 'succeeded' && !c.winner),
        title: canPick ? 'Make it the winner (then approve the race to merge it)' : 'A winner is picked by hand while the race waits for approval',
        onclick: () => act('pick', { message: c.task }),
      }, 'Pick this one'),
      h('pre', { class: 'diff', 'data-testid': `candidate-diff-${c.task}` }, candidateDiff(c)))));
}

/** Where a candidate's diff is cached: by its task, commit and status (a
 * running candidate's work changes without a new commit being known). */
function diffKey(c) {
  const t = task(c.task);
  return `${c.task}@${t && t.commit}@${c.status}`;
}

/** A candidate's diff, fetched once per key; null in the cache while it loads. */
function candidateDiff(c) {
  const key = diffKey(c);
  const have = S.diffs.get(key);
  if (typeof have === 'string') return diffLines(have);
  if (have === undefined) {
    S.diffs.set(key, null);
    api(`${taskPath(c.task)}/diff`, { text: true })
      .then((text) => { S.diffs.set(key, text); })
      .catch((e) => { if (e instanceof Stale) S.diffs.delete(key); else S.diffs.set(key, `(no diff: ${e.message})`); })
      .finally(() => renderCandidates());
  }
  return h('span', { class: 'empty' }, 'loading…');
}

/** Diff text as coloured lines. */
function diffLines(text) {
  if (!String(text).trim()) return h('span', { class: 'empty' }, 'No changes.');
  return String(text).replace(/\n$/, '').split('\n').map((l) => {
    const cls = l.startsWith('+++') || l.startsWith('---') || l.startsWith('diff ') ? 'file'
      : l.startsWith('@@') ? 'hunk' : l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : '';
    return h('span', { class: `line ${cls}` }, `${l}\n`);
  });
}

function renderBoardSelection() {
  for (const el of document.querySelectorAll('[data-task]')) {
    el.classList.toggle('selected', el.dataset.task === S.taskId);
  }
}

function phases(tasks) {
  const by = new Map(tasks.map((t) => [t.id, t]));
  const memo = new Map();
  const depth = (id, seen = new Set()) => {
    if (memo.has(id)) return memo.get(id);
    if (seen.has(id)) return 0; // a cycle cannot pass check; stay safe anyway
    seen.add(id);
    const t = by.get(id);
    const needs = ((t && t.needs) || []).filter((n) => by.has(n));
    const d = needs.length ? 1 + Math.max(...needs.map((n) => depth(n, seen))) : 0;
    memo.set(id, d);
    return d;
  };
  tasks.forEach((t) => depth(t.id));
  return memo;
}

function renderDag() {
  drawDag($('dag'), (S.report && S.report.tasks) || [], selectTask);
  renderBoardSelection();
}

/** Draws `tasks` (id, status, needs, activity) as phases joined by their needs. */
function drawDag(box, tasks, onSelect) {
  if (!tasks.length) { box.replaceChildren(h('p', { class: 'empty' }, 'No tasks.')); return; }
  const phase = phases(tasks);
  const cols = [];
  for (const t of tasks) (cols[phase.get(t.id)] ||= []).push(t);
  const H = 46, GX = 48, GY = 12, P = 6;
  const tall = Math.max(...cols.map((c) => (c ? c.length : 0)));
  const wide = cols.length * (150 + GX) - GX + 2 * P;
  // On a narrow screen, phases go top to bottom instead of left to right,
  // with boxes narrowed (down to 110px) to fit the screen if they can.
  const fit = Math.floor((box.clientWidth - 2 * P - (tall - 1) * GY) / tall);
  const Wv = Math.max(110, Math.min(150, fit));
  const narrow = P * 2 + tall * (Wv + GY) - GY;
  const vertical = box.clientWidth > 0 && wide > box.clientWidth && narrow < wide;
  const W = vertical ? Wv : 150;
  const chars = Math.floor((W - 20) / 7.6);
  const pos = new Map();
  cols.forEach((c, i) => (c || []).forEach((t, j) => {
    pos.set(t.id, vertical
      ? { x: P + j * (W + GY), y: P + i * (H + GX) }
      : { x: P + i * (W + GX), y: P + j * (H + GY) });
  }));
  const width = vertical ? narrow : wide;
  const height = vertical ? P * 2 + cols.length * (H + GX) - GX : P * 2 + tall * (H + GY) - GY;
  const edges = [];
  for (const t of tasks) {
    for (const n of t.needs || []) {
      const a = pos.get(n), b = pos.get(t.id);
      if (!a || !b) continue;
      const d = vertical
        ? `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + GX / 2} ${b.x + W / 2},${b.y - GX / 2} ${b.x + W / 2},${b.y}`
        : `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}`;
      edges.push(svg('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
    }
  }
  const nodes = tasks.map((t) => {
    const p = pos.get(t.id);
    const g = svg('g', { class: `node st-${t.status}`, 'data-task': t.id, transform: `translate(${p.x},${p.y})`, tabindex: 0, role: 'button' },
      svg('title', {}, `${t.id}: ${t.status}`),
      svg('rect', { width: W, height: H, rx: 6 }),
      svg('text', { x: 10, y: 19, class: 'node-id' }, clip(t.id, chars)),
      svg('text', { x: 10, y: 36, class: 'node-st' }, clip(t.status.replace('_', ' ') + (t.status === 'running' && t.activity ? ` · ${t.activity.replace('_', ' ')}` : ''), Math.floor((W - 16) / 6))));
    if (onSelect) {
      g.addEventListener('click', () => onSelect(t.id));
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter') onSelect(t.id); });
    }
    return g;
  });
  box.replaceChildren(svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'task graph' },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))),
    edges, nodes));
}

// ---------- rendering: task detail ----------

function renderDetail() {
  if (!S.taskId) return;
  const t = task(S.taskId) || { id: S.taskId, status: 'unknown' };
  $('detail-title').replaceChildren(h('code', {}, t.id), ' ', h('span', { class: `pill st-${t.status}` }, t.status.replace('_', ' ')));
  const u = t.usage || {};
  const rows = [
    ['agent', t.agent],
    ['agents', t.agents && t.agents.length > 1 ? t.agents.join(' → ') : null],
    ['handed over', t.fallbacks && t.fallbacks.length ? h('ul', {}, t.fallbacks.map((f) => h('li', {}, h('code', {}, f.from), ' → ', h('code', {}, f.to), ': ', f.reason))) : null],
    ['rate limits', t.rate_limit_waits ? `waited ${t.rate_limit_waits}×, ${fmtDur(t.rate_limit_wait_ms)}` : null],
    ['activity', t.status === 'running' || t.activity === 'waiting_memory' ? t.activity : null],
    ['attempts', t.attempts],
    ['elapsed', h('span', { class: 'elapsed', 'data-start': t.status === 'running' ? toMs(t.started_at_ms) : null }, fmtDur(elapsedOf(t)))],
    ['tokens', u.input_tokens != null || u.output_tokens != null ? `${fmtNum(u.input_tokens)} in / ${fmtNum(u.output_tokens)} out` : null],
    ['cost', fmtCost(u.cost_usd) || null],
    ['branch', t.branch && h('code', {}, t.branch)],
    ['commit', t.commit && h('code', {}, short(t.commit))],
    ['merged', t.merged == null ? null : t.merged ? 'yes' : 'no'],
    ['needs', t.needs && t.needs.length ? t.needs.join(', ') : null],
    ['reason', t.reason],
    ['conflict ahead', t.conflict_ahead && t.conflict_ahead.length ? h('span', { class: 'warn' }, paths(t.conflict_ahead)) : null],
    ['warnings', t.warnings && t.warnings.length ? h('ul', { class: 'warnings' }, t.warnings.map((w) => h('li', {}, w))) : null],
    ['result', t.result && h('span', { class: 'result' }, t.result)],
  ].filter(([, v]) => v != null && v !== '');
  $('detail-meta').replaceChildren(h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  // The report says which actions the task's status allows (the server answers 409 otherwise).
  const can = new Set(t.actions || []);
  $('btn-stop').disabled = !can.has('stop');
  $('btn-approve').disabled = !can.has('approve');
  $('btn-retry').disabled = !can.has('retry');
  $('btn-steer').disabled = !can.has('steer');
  // A message waits for the task's next turn or attempt: any task not done yet.
  const open = can.has('steer') || t.status === 'pending';
  $('btn-message').disabled = !open;
  $('steer-input').disabled = !open;
  renderCandidates();
}

/** File paths as code, comma-separated. */
function paths(list) {
  return (list || []).map((p) => h('code', {}, p)).flatMap((x, i) => (i ? [', ', x] : [x]));
}

function describe(ev) {
  const d = ev.data || {};
  const code = (x) => h('code', {}, x);
  switch (ev.kind) {
    case 'task_started': return ['task started'];
    case 'attempt_started': return [d.kind === 'resolve' ? h('span', { class: 'tag tag-resolve' }, 'resolution') : '', `attempt ${d.attempt ?? ev.attempt ?? ''} started`, d.feedback ? ' (with feedback)' : ''];
    case 'agent_session': return ['session ', code(short(d.id, 12)), d.model ? ` · model ${d.model}` : ''];
    case 'agent_message': return [h('div', { class: 'text' }, d.text)];
    case 'tool_call': return [h('span', { class: `tool tool-${d.kind || 'other'}` }, d.kind || 'tool'), ' ', h('b', {}, d.name), d.detail ? [' ', code(d.detail)] : ''];
    case 'tool_result': return [d.ok === false ? '✗ ' : '✓ ', d.detail ? h('span', { class: 'out' }, d.detail) : 'done'];
    case 'usage': return [`${fmtNum(d.input_tokens)} in / ${fmtNum(d.output_tokens)} out`, d.cost_usd != null ? ` · ${fmtCost(d.cost_usd)}` : '', d.model ? ` · ${d.model}` : ''];
    case 'agent_retry': return ['agent retries: ', d.detail];
    case 'agent_error': return [d.message];
    case 'agent_result': return [h('div', { class: 'text' }, d.result)];
    case 'gate_started': return ['gate ', code(d.gate), ' running'];
    case 'gate_finished': return ['gate ', code(d.gate), d.passed ? ' passed' : ' failed', d.duration_ms != null ? ` in ${fmtDur(d.duration_ms)}` : '', d.reason ? h('div', { class: 'out' }, d.reason) : ''];
    case 'committed': return ['committed ', code(short(d.commit))];
    case 'attempt_failed': return [`attempt ${d.attempt ?? ''} failed: `, d.reason, d.retry ? ' (retrying)' : ''];
    case 'merge_queued': return ['queued for merging'];
    case 'merged': return ['merged into the integration branch', d.changes != null ? ` (${typeof d.changes === 'number' ? `${d.changes} changes` : d.changes ? 'changes' : 'no changes'})` : ''];
    case 'succeeded': return ['succeeded'];
    case 'failed': return ['failed: ', d.reason];
    case 'stopped': return ['stopped', d.reason ? `: ${d.reason}` : ''];
    case 'conflicted': return ['merge conflict in ', paths(d.paths)];
    case 'resolving': return ['merge conflict in ', paths(d.paths), ': a resolution attempt starts'];
    case 'waiting': return [d.reason || 'waiting'];
    case 'setup_finished': return ['setup ', code(d.gate), d.passed ? ' done' : ' failed', d.duration_ms != null ? ` in ${fmtDur(d.duration_ms)}` : ''];
    case 'teardown_finished': return ['teardown ', code(d.gate), d.passed ? ' done' : ' failed'];
    case 'conflict_ahead': return ['will conflict with the integration branch in ', paths(d.paths)];
    case 'verify_started': return ['run check ', code(d.gate), ' running'];
    case 'verify_finished': return ['run check ', code(d.gate), d.passed ? ' passed' : ' failed', d.duration_ms != null ? ` in ${fmtDur(d.duration_ms)}` : ''];
    case 'verify_failed': return ['the merged whole failed the run\'s checks: ', d.reason];
    case 'branch_rewritten': return [(d.warnings || ['the agent rewrote its branch']).join('; ')];
    case 'repo_changed': return ['repository changed: ', (d.changes || []).join('; ')];
    case 'skipped': return ['skipped: ', d.reason];
    case 'approval_needed': return ['waiting for approval', d.commit ? [' of ', code(short(d.commit))] : ''];
    case 'approved': return ['approved'];
    case 'steered': return ['steered: ', h('q', {}, d.message)];
    case 'fallback': return ['handed over from ', code(d.from), ' to ', code(d.to), ': ', d.reason];
    case 'rate_limited': return ['limited by the provider: ', (d.kind || '').replace('_', ' '), d.retry_after_ms != null ? ` (it waits ${fmtDur(d.retry_after_ms)})` : '', d.resets_at ? ` (resets at ${d.resets_at})` : '', d.detail ? h('div', { class: 'out' }, d.detail) : ''];
    case 'sandbox_connection': return [d.allowed ? 'network: connected to ' : 'network: refused ', code(d.host), d.allowed ? '' : ' (not in the allow-list)'];
    case 'sandbox_notice': return ['sandbox: ', d.notice];
    case 'gateway_notice': return ['gateway: ', d.notice];
    case 'service_ready': return ['service ' + d.name + ' ready at ', d.addr];
    case 'message_sent': return ['→ message to ', code(d.to), ': ', h('q', {}, d.text)];
    case 'message_received': return ['← message from ', d.from ? code(d.from) : 'a person', ': ', h('q', {}, d.text)];
    case 'stalled': return ['no output for a while: stalled?'];
    case 'interrupted': return ['interrupted'];
    default: return [Object.keys(d).length ? code(JSON.stringify(d)) : ''];
  }
}

function eventClass(ev) {
  const d = ev.data || {};
  if (ev.kind === 'gate_finished') return d.passed ? 'good' : 'bad';
  if (ev.kind === 'sandbox_connection') return d.allowed ? '' : 'bad';
  if (ev.kind === 'rate_limited') return 'bad';
  if (ev.kind === 'tool_result') return d.ok === false ? 'bad' : '';
  if (ev.kind === 'agent_result') return d.is_error ? 'bad' : '';
  if (['failed', 'attempt_failed', 'agent_error', 'conflicted', 'stalled'].includes(ev.kind)) return 'bad';
  if (['succeeded', 'merged', 'approved', 'committed'].includes(ev.kind)) return 'good';
  if (['approval_needed', 'steered', 'stopped'].includes(ev.kind)) return 'warn';
  return '';
}

function renderTranscript() {
  const list = $('transcript');
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  S.events.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  if (!S.events.length) { list.replaceChildren(h('li', { class: 'empty' }, 'Nothing yet.')); return; }
  list.replaceChildren(...S.events.map((ev) => h('li', { class: `ev ev-${ev.kind} ${eventClass(ev)}`, 'data-kind': ev.kind, 'data-seq': ev.seq },
    h('span', { class: 'ev-when' }, fmtClock(toMs(ev.ts)), ev.attempt ? ` #${ev.attempt}` : ''),
    h('span', { class: 'ev-kind' }, ev.kind.replace(/_/g, ' ')),
    h('span', { class: 'ev-body' }, describe(ev)))));
  if (atEnd) list.scrollTop = list.scrollHeight;
}

const MARK_WORDS = { draft: 'draft', sent: 'sent', changed: 'changed: addressed?', unchanged: 'unchanged', gone: 'file gone' };

/** The diff, each line of the new side a place to comment on, with the
 * task's review (drafts, sent comments and what became of their lines). */
function renderDiff(text) {
  const pre = $('diff');
  const review = renderReview();
  if (!text || !String(text).trim()) { pre.replaceChildren(review, h('span', { class: 'empty' }, 'No changes.')); return; }
  let path = null;
  let line = 0;
  const rows = String(text).replace(/\n$/, '').split('\n').map((l) => {
    let cls = '';
    let at = null;
    if (l.startsWith('+++ ')) { cls = 'file'; path = l.startsWith('+++ b/') ? l.slice(6) : null; }
    else if (l.startsWith('---') || l.startsWith('diff ') || l.startsWith('index ')) cls = 'file';
    else if (l.startsWith('@@')) { cls = 'hunk'; const m = l.match(/\+(\d+)/); line = m ? Number(m[1]) : 0; }
    else if (l.startsWith('-')) cls = 'del';
    else { cls = l.startsWith('+') ? 'add' : ''; at = path ? line : null; line += 1; }
    if (at == null) return h('span', { class: `line ${cls}` }, `${l}\n`);
    const place = `${path}:${at}`;
    const comments = (S.review || []).filter((c) => c.path === path && c.line === at);
    return [
      h('span', { class: `line ${cls} commentable`, title: `comment on ${place}`, 'data-testid': `diff-line-${place}`, onclick: () => openComment(pre, path, at) }, `${l}\n`),
      comments.map((c) => h('span', { class: `line note mark-${c.mark}` }, `    ↳ ${c.text} [${MARK_WORDS[c.mark] || c.mark}]\n`)),
    ];
  });
  pre.replaceChildren(review, h('div', { class: 'lines' }, rows));
}

/** The review bar: how many comments wait to be sent, and a button that sends them. */
function renderReview() {
  const drafts = (S.review || []).filter((c) => c.mark === 'draft');
  const status = h('span', { class: 'note', role: 'status', 'data-testid': 'review-status' });
  if (!drafts.length) return h('div', { class: 'review', 'data-testid': 'review' }, status);
  const note = h('input', { 'data-testid': 'review-note', placeholder: 'a note on the whole (optional)' });
  const send = async () => {
    status.textContent = '…';
    try {
      const r = await api(`${taskPath()}/review/submit`, { method: 'POST', body: note.value.trim() ? { note: note.value } : {} });
      status.textContent = r.message || 'sent';
      refreshDiff();
    } catch (e) { status.textContent = e.message; }
  };
  return h('div', { class: 'review', 'data-testid': 'review' },
    h('strong', {}, `${drafts.length} comment${drafts.length === 1 ? '' : 's'} to send`), note,
    h('button', { type: 'button', class: 'primary', 'data-testid': 'review-submit', onclick: send }, 'Send review'), status);
}

/** An input under the diff for a comment on `path:line`. */
function openComment(pre, path, line) {
  const old = pre.querySelector('.comment-form');
  if (old) old.remove();
  const text = h('textarea', { rows: 2, 'data-testid': 'review-text', placeholder: `comment on ${path}:${line}` });
  const said = h('span', { class: 'note', role: 'status' });
  const form = h('form', { class: 'comment-form', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api(`${taskPath()}/review/comments`, { method: 'POST', body: { path, line, text: text.value } });
      form.remove();
      refreshDiff(true);
    } catch (err) { said.textContent = err.message; }
  } }, h('span', {}, `${path}:${line}`), text, h('button', { type: 'submit', class: 'primary', 'data-testid': 'review-add' }, 'Add comment'), said);
  pre.prepend(form);
  text.focus();
}

function renderAttempts() {
  const box = $('attempts');
  if (!S.attempts.length) { box.replaceChildren(h('p', { class: 'empty' }, 'No attempts yet.')); return; }
  box.replaceChildren(h('table', {},
    h('thead', {}, h('tr', {}, ['#', 'status', 'exit', 'tokens', 'cost', 'time', 'log'].map((x) => h('th', {}, x)))),
    h('tbody', {}, S.attempts.map((a) => {
      const took = toMs(a.finished_at) && toMs(a.started_at) ? toMs(a.finished_at) - toMs(a.started_at) : null;
      return [h('tr', {},
        h('td', {}, a.n, a.kind === 'resolve' ? [' ', h('span', { class: 'tag tag-resolve' }, 'resolution')] : ''), h('td', {}, a.status), h('td', {}, a.exit_code ?? ''),
        h('td', {}, a.input_tokens != null ? `${fmtNum(a.input_tokens)}/${fmtNum(a.output_tokens)}` : ''),
        h('td', {}, fmtCost(a.cost_usd)), h('td', {}, fmtDur(took)),
        h('td', {}, h('a', { href: `${taskPath()}/log?attempt=${a.n}`, target: '_blank', rel: 'noopener' }, 'log'))),
      a.reason ? h('tr', { class: 'reason' }, h('td', { colspan: 7 }, a.reason)) : null];
    }))));
}

function showTab(name) {
  S.tab = name;
  for (const b of document.querySelectorAll('.tabs [data-tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const p of document.querySelectorAll('[data-pane]')) p.hidden = p.dataset.pane !== name;
}

// ---------- actions ----------

async function act(kind, body = {}) {
  const id = S.taskId;
  const out = $('action-status');
  out.textContent = `${kind}…`;
  try {
    const r = await api(`${taskPath(id)}/${kind}`, { body });
    out.textContent = r.message || 'done';
    out.className = 'note ok';
  } catch (e) {
    out.textContent = (e.body && e.body.message) || e.message;
    out.className = 'note error';
  }
  refreshReport();
  refreshTask();
}

$('btn-stop').addEventListener('click', () => act('stop'));
$('btn-approve').addEventListener('click', () => act('approve'));
$('btn-retry').addEventListener('click', () => act('retry'));
$('steer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('steer-input');
  const message = input.value.trim();
  if (!message) { input.focus(); return; }
  await act('steer', { message });
  input.value = '';
});
$('btn-message').addEventListener('click', async () => {
  const input = $('steer-input');
  const text = input.value.trim();
  if (!text) { input.focus(); return; }
  const out = $('action-status');
  out.textContent = 'message…';
  try {
    const r = await api(`${taskPath(S.taskId)}/messages`, { body: { text } });
    out.textContent = r.message || 'sent';
    out.className = r.ok === false ? 'note error' : 'note ok';
    if (r.ok !== false) input.value = '';
  } catch (e) {
    out.textContent = (e.body && e.body.message) || e.message;
    out.className = 'note error';
  }
  refreshTask();
});
$('detail-close').addEventListener('click', closeTask);
for (const b of document.querySelectorAll('.tabs [data-tab]')) b.addEventListener('click', () => showTab(b.dataset.tab));
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && S.taskId) closeTask(); });

$('add').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('add-status');
  const prompt = $('add-prompt').value;
  if (!prompt.trim()) return;
  const agent = $('add-agent').value.trim() || null;
  const tags = $('add-tags').value.split(',').map((s) => s.trim()).filter(Boolean);
  $('add-submit').disabled = true;
  out.className = 'note';
  out.textContent = 'adding…';
  try {
    const r = await api(S.api + '/tasks', { body: { prompt, agent, tags } });
    out.textContent = `queued ${r.task} in run ${r.run}`;
    out.className = 'note ok';
    $('add-prompt').value = '';
    await refreshRuns(true);
    await selectRun(r.run);
    await refreshReport(true);
    await selectTask(r.task);
  } catch (err) {
    out.textContent = err.message;
    out.className = 'note error';
  } finally {
    $('add-submit').disabled = false;
  }
});

// ---------- a plan from a goal ----------

/** Follows a planner's run until its plan is ready (or it failed). */
async function followProposal(run, base) {
  const out = $('goal-status');
  for (;;) {
    const p = await api(`${base}/plans/${encodeURIComponent(run)}`, { anyRepo: true });
    if (p.status === 'ready') return p;
    if (p.status === 'failed') throw new Error(`the planner did not write a valid plan: ${p.error}`);
    out.textContent = `planning (run ${run}${p.activity ? `, ${p.activity.replace('_', ' ')}` : ''})…`;
    await new Promise((r) => setTimeout(r, 700));
  }
}

function showProposal(p) {
  S.proposalRun = p.run;
  $('proposal').hidden = false;
  $('proposal-said').textContent = p.said ? `The planner: ${p.said}` : '';
  $('proposal-toml').value = p.plan;
  $('proposal-status').textContent = '';
  drawDag($('proposal-dag'), p.tasks, null);
}

$('goal').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('goal-status');
  const goal = $('goal-text').value;
  if (!goal.trim()) return;
  const agent = $('goal-agent').value.trim() || null;
  $('goal-submit').disabled = true;
  out.className = 'note';
  out.textContent = 'starting the planner…';
  try {
    const base = S.api;
    const { run } = await api(base + '/plans', { body: { goal, agent }, anyRepo: true });
    const p = await followProposal(run, base);
    if (base !== S.api) {
      out.textContent = `run ${run} proposed a plan in another repository: its "Needs you" item opens it`;
      return;
    }
    out.textContent = `proposed by run ${run}: edit it if you like, then Run`;
    out.className = 'note ok';
    showProposal(p);
  } catch (err) {
    out.textContent = (err.body && err.body.message) || err.message;
    out.className = 'note error';
  } finally {
    $('goal-submit').disabled = false;
  }
});

$('proposal-run').addEventListener('click', async () => {
  const out = $('proposal-status');
  out.className = 'note';
  out.textContent = 'starting…';
  try {
    const r = await api(S.api + '/runs', { body: { source: $('proposal-toml').value, proposal: S.proposalRun } });
    out.textContent = `run ${r.run} started`;
    out.className = 'note ok';
    $('proposal').hidden = true;
    await refreshRuns(true);
    await selectRun(r.run);
  } catch (err) {
    out.textContent = (err.body && err.body.message) || err.message;
    out.className = 'note error';
  }
});
$('proposal-discard').addEventListener('click', async () => {
  const out = $('proposal-status');
  try {
    if (S.proposalRun) await api(`${S.api}/plans/${encodeURIComponent(S.proposalRun)}/discard`, { method: 'POST', body: {} });
    $('proposal').hidden = true;
    refreshInbox();
  } catch (err) {
    out.textContent = (err.body && err.body.message) || err.message;
    out.className = 'note error';
  }
});

/** Opens a planner's plan that waits for a yes (from the inbox, or a
 * notification's `?proposal=RUN` link) to read, edit and run. */
async function openProposal(run) {
  try {
    const p = await api(`${S.api}/plans/${encodeURIComponent(run)}`);
    if (p.status !== 'ready') throw new Error(`the plan of run ${run} is ${p.status}`);
    showProposal(p);
    if (p.decided) {
      $('proposal-status').textContent = `this plan was ${p.decided.decision}${p.decided.run ? ` (run ${p.decided.run})` : ''}`;
    }
    $('proposal').scrollIntoView({ block: 'nearest' });
  } catch (err) {
    showError(err);
  }
}

// ---------- start ----------

setInterval(() => {
  for (const el of document.querySelectorAll('.elapsed[data-start]')) el.textContent = fmtDur(Date.now() - Number(el.dataset.start));
}, 1000);
// Where work comes in from changes slowly (a poll, a schedule's time).
setInterval(() => { if (!document.hidden) refreshIncoming().catch(() => {}); }, 15000);
// A slow poll in case the event stream is down (proxies, sleeping laptops).
setInterval(() => { if (!S.es || S.es.readyState !== EventSource.OPEN) { refreshRuns(); refreshReport(); } }, 15000);
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshAll().catch(showError); });
let resizeTimer = null;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderDag, 150); });

// ---------- repositories ----------

/** The repositories this server serves; the one shown is `?repo=`, else
 * the last one shown here, else the first. */
async function loadRepos(asked) {
  const { repos } = await api('/api/repos');
  S.repos = repos || [];
  const kept = localStorage.getItem('baton.repo');
  const pick = S.repos.find((r) => r.name === asked) || S.repos.find((r) => r.name === kept) || S.repos[0];
  setRepo(pick);
}

function setRepo(r) {
  S.repo = r || null;
  S.api = r ? r.api : '/api';
  const box = $('repo-switch');
  box.hidden = S.repos.length < 2;
  box.replaceChildren(...S.repos.map((x) => h('option', { value: x.name, title: x.root }, x.name)));
  if (r) box.value = r.name;
  if (r && S.repos.length > 1) localStorage.setItem('baton.repo', r.name);
}

/** Shows repository `name`: its runs, its events, its incoming work. */
async function switchRepo(name, toUrl = true) {
  const r = S.repos.find((x) => x.name === name);
  if (!r || (S.repo && r.name === S.repo.name)) return;
  setRepo(r);
  S.gen += 1;
  S.diffs.clear();
  if (S.es) { S.es.close(); S.es = null; }
  // A planner's plan is its repository's: not run in another.
  $('proposal').hidden = true;
  S.proposalRun = null;
  S.lastSeq = null;
  S.runs = [];
  S.runId = null;
  S.runPicked = false;
  S.report = null;
  closeTask();
  renderRun();
  if (toUrl) history.replaceState(null, '', `${window.location.pathname}?repo=${enc(r.name)}`);
  await refreshAll();
  await refreshIncoming().catch(() => {});
  connect();
}

$('repo-switch').addEventListener('change', (e) => switchRepo(e.target.value).catch(showError));
// Other repositories' items come in without their events: read again now and then.
setInterval(() => { if (!document.hidden && S.repos.length > 1) refreshInbox(); }, 15000);

async function start() {
  const q0 = new URLSearchParams(window.location.search);
  await loadRepos(q0.get('repo'));
  await refreshAll();
  await refreshIncoming().catch(() => {});
  // A link to a run or a task (`?run=ID&task=ID`, as trackers' comments give).
  const q = new URLSearchParams(window.location.search);
  if (q.get('run')) await selectRun(q.get('run'));
  if (q.get('run') && q.get('task')) await selectTask(q.get('task'));
  if (q.get('proposal')) await openProposal(q.get('proposal'));
  if ($('login').hidden) connect();
}

(async () => {
  setupNotifications();
  showTab('transcript');
  renderRun();
  const m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (m) {
    history.replaceState(null, '', window.location.pathname + window.location.search);
    try { await login(decodeURIComponent(m[1])); } catch (e) { showLogin(); $('login-error').textContent = e.message; $('login-error').hidden = false; return; }
  }
  try { await start(); } catch (e) { showError(e); }
})();
