// admin/admin.js: the admin console's entry module. Owns the admin token (this tab's session
// storage and memory only: never a URL, a cookie or local storage), the log-in and log-out, and the
// users table (paging, revoke / un-revoke, roles, creating a user) over the admin API. The live
// charts are charts.js, the event tail tail.js.
//
// Everything a user or the server supplies reaches the page as text (textContent, input values),
// never as markup: usernames and roles are chosen by others, and this page holds the admin token.
import { startMetrics } from './charts.js';
import { Tail } from './tail.js';

const TOKEN_KEY = 'broker.admin.token';
const $ = (id) => document.getElementById(id);

let token = null;
let stopMetrics = null;
const tail = new Tail({ status: (s) => { $('tail-status').textContent = s; }, event: showTailEvent, idle: tailIdle });

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Paths are relative to the page (/admin), so "admin/users" is /admin/users, also behind a proxy
// that mounts broker under a prefix.
async function adminApi(path, { method = 'GET', body, probe = false } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, 'cannot reach the server');
  }
  let json = null;
  try { json = await res.json(); } catch { /* not JSON: the status says enough */ }
  if (!res.ok) {
    const why = json && typeof json.error === 'string' ? json.error : `HTTP ${res.status}`;
    if (res.status === 401 && !probe) {
      // The token stopped working (the server restarted with another one): back to the log-in.
      logOut(`logged out: ${why}`);
    }
    throw new ApiError(res.status, why);
  }
  return json;
}

// ---- log-in -----------------------------------------------------------------------------------

async function logIn(candidate, { remembered = false } = {}) {
  const error = $('login-error');
  error.textContent = '';
  token = candidate;
  try {
    await adminApi('admin/users?limit=1', { probe: true });
  } catch (e) {
    token = null;
    if (e.status !== 0) sessionStorage.removeItem(TOKEN_KEY); // unreachable: it may work on a reload
    const why = e.status === 404 ? 'this server has no admin API (it was started without --admin_token)' : e.message;
    error.textContent = remembered ? `the saved token no longer works: ${why}` : why;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  $('token').value = '';
  $('login-view').hidden = true;
  $('console-view').hidden = false;
  $('logout').hidden = false;
  $('conn').textContent = `logged in to ${location.host}`;
  stopMetrics = startMetrics($('metrics-status'));
  users.reset();
}

function logOut(message = '') {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (stopMetrics) stopMetrics();
  stopMetrics = null;
  tail.stop('stopped');
  $('users').tBodies[0].replaceChildren();
  $('tail').replaceChildren();
  $('console-view').hidden = true;
  $('logout').hidden = true;
  $('login-view').hidden = false;
  $('conn').textContent = '';
  $('login-error').textContent = message;
  $('token').focus();
}

// ---- users ------------------------------------------------------------------------------------

const roleList = (text) => text.split(/[\s,]+/).filter(Boolean);
const when = (unix) => new Date(unix * 1000).toISOString().slice(0, 16).replace('T', ' ');

function el(tag, { text, cls, attrs } = {}, children = []) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const users = {
  // The `after` cursor of each page seen so far: going back needs no cursor the API cannot give.
  cursors: [null],
  page: 0,
  next: null,
  seq: 0, // only the newest load may draw: answers can arrive out of order

  reset() {
    this.cursors = [null];
    this.page = 0;
    return this.load();
  },

  async load() {
    const size = $('page-size').value;
    const after = this.cursors[this.page];
    const q = new URLSearchParams({ limit: size });
    if (after) q.set('after', after);
    $('users-error').textContent = '';
    const seq = ++this.seq;
    let data;
    try {
      data = await adminApi(`admin/users?${q}`);
    } catch (e) {
      if (seq === this.seq) $('users-error').textContent = `cannot list the users: ${e.message}`;
      return;
    }
    if (seq !== this.seq || !token) return;
    this.next = data.next;
    $('users').tBodies[0].replaceChildren(...data.users.map(userRow));
    $('users-page').textContent = `page ${this.page + 1}` +
      (data.users.length ? `, ${data.users.length} user${data.users.length === 1 ? '' : 's'}` : ', no users');
    $('users-prev').disabled = this.page === 0;
    $('users-next').disabled = !this.next;
  },

  forward() {
    if (!this.next) return;
    this.cursors[this.page + 1] = this.next;
    this.page += 1;
    this.load();
  },

  back() {
    if (this.page === 0) return;
    this.page -= 1;
    this.load();
  },
};

function userRow(u) {
  const roles = el('input', { cls: 'roles', attrs: { type: 'text', 'aria-label': `roles of ${u.username}`, spellcheck: 'false' } });
  roles.value = u.roles.join(', ');
  const save = el('button', { text: 'Save roles', cls: 'save-roles', attrs: { type: 'button' } });
  save.disabled = true;
  roles.addEventListener('input', () => { save.disabled = roles.value.trim() === u.roles.join(', '); });
  roles.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !save.disabled) save.click(); });
  save.addEventListener('click', () => patchUser(u, { roles: roleList(roles.value) }, save));

  const toggle = el('button', { text: u.revoked ? 'Un-revoke' : 'Revoke', cls: u.revoked ? 'unrevoke' : 'revoke danger',
    attrs: { type: 'button' } });
  toggle.addEventListener('click', () => patchUser(u, { revoked: !u.revoked }, toggle));

  const tr = el('tr', { cls: u.revoked ? 'is-revoked' : '' }, [
    el('td', { text: u.username, cls: 'username' }),
    el('td', {}, [el('code', { text: u.id, cls: 'id' })]),
    el('td', {}, [roles, save]),
    el('td', { text: u.totp ? 'on' : 'off', cls: 'totp' }),
    el('td', { text: when(u.created_at), cls: 'created' }),
    el('td', { text: u.revoked ? 'revoked' : 'active', cls: `status ${u.revoked ? 'revoked' : 'active'}` }),
    el('td', {}, [toggle]),
  ]);
  tr.dataset.id = u.id;
  tr.dataset.username = u.username;
  return tr;
}

async function patchUser(u, change, button) {
  button.disabled = true;
  $('users-error').textContent = '';
  try {
    const updated = await adminApi(`admin/users/${encodeURIComponent(u.id)}`, { method: 'PATCH', body: change });
    const row = [...$('users').tBodies[0].rows].find((r) => r.dataset.id === u.id);
    if (row) row.replaceWith(userRow(updated));
  } catch (e) {
    $('users-error').textContent = `${u.username}: ${e.message}`;
    button.disabled = false;
  }
}

async function createUser(event) {
  event.preventDefault();
  const out = $('create-result');
  const body = { username: $('create-username').value, password: $('create-password').value };
  const roles = roleList($('create-roles').value);
  if (roles.length) body.roles = roles;
  out.className = 'small';
  out.textContent = 'creating…';
  try {
    const u = await adminApi('admin/users', { method: 'POST', body });
    $('create-password').value = '';
    $('create-username').value = '';
    $('create-roles').value = '';
    out.textContent = `created ${u.username} (${u.id})`;
    users.load();
  } catch (e) {
    out.className = 'small error';
    out.textContent = e.message;
  }
}

// ---- tail -------------------------------------------------------------------------------------

const TAIL_MAX = 200;

function showTailEvent(f) {
  const list = $('tail');
  const time = new Date().toTimeString().slice(0, 8);
  const item = el('li', { cls: f.control ? 'control' : '' }, [
    el('span', { text: time, cls: 'time' }),
    el('span', { text: f.id ? `#${f.id}` : '–', cls: 'id' }),
    el('span', { text: f.event, cls: 'event' }),
    el('code', { text: f.data, cls: 'data' }),
  ]);
  item.dataset.event = f.event;
  if (f.id) item.dataset.id = f.id;
  list.prepend(item);
  while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
}

function tailIdle(idle) {
  $('tail-start').disabled = !idle;
  $('tail-stop').disabled = idle;
}

function startTail(event) {
  event.preventDefault();
  const password = $('tail-password');
  const options = {
    username: $('tail-username').value,
    password: password.value,
    totp: $('tail-totp').value.trim(),
    events: $('tail-events').value.split(',').map((s) => s.trim()).filter(Boolean),
  };
  password.value = ''; // used once, for this log-in; the token it buys stays in tail.js's memory
  $('tail-totp').value = '';
  tail.start(options);
}

// ---- wiring -----------------------------------------------------------------------------------

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  logIn($('token').value);
});
$('logout').addEventListener('click', () => logOut());
$('users-refresh').addEventListener('click', () => users.load());
$('users-next').addEventListener('click', () => users.forward());
$('users-prev').addEventListener('click', () => users.back());
$('page-size').addEventListener('change', () => users.reset());
$('create-form').addEventListener('submit', createUser);
$('tail-form').addEventListener('submit', startTail);
$('tail-stop').addEventListener('click', () => tail.stop('stopped'));

const remembered = sessionStorage.getItem(TOKEN_KEY);
if (remembered) logIn(remembered, { remembered: true });
else $('token').focus();
