// app.js: the demo page. Signs in (registering a new name on the spot), then binds every form
// field to one event: an edit is an insert (sender.js), and the subscription's state store puts
// everyone's latest value into every open tab. The shared fields are form.*, readable and
// writable by all; the draft is draft.<my id>.*, which the rules file keeps to its owner.
import { createBroker } from '/clients/js/index.js';
import { SHARED, DRAFT, sharedEvent, draftEvent, eventsFor } from './fields.js';
import { createSender } from './sender.js';
import { buildField } from './view.js';

const $ = (id) => document.getElementById(id);
const config = await (await fetch('config.json', { cache: 'no-store' })).json();
// The token stays in this tab's memory (@broker/client never stores it): a reload signs in again.
const broker = createBroker({ url: config.broker });
let session = null; // { sub, fields } while signed in

function showStatus({ status, lastError }) {
  $('status').dataset.status = status;
  $('status').textContent = status;
  $('error').textContent = lastError && status !== 'live' ? lastError.message : '';
}

function start() {
  const me = broker.user;
  $('who').textContent = `as ${me.username}`;
  const fields = new Map(); // event name -> { input, by }
  let sub = null;

  const sender = createSender(broker, {
    onError: (e) => { $('error').textContent = `not saved: ${e.message}`; },
    onIdle: (name) => show(name),
  });

  // Write the stream's value into a field, unless the user's own edit is still on its way.
  function show(name) {
    const f = fields.get(name);
    const e = sub?.store.entry(name);
    const value = typeof e?.data?.value === 'string' ? e.data.value : '';
    f.by.textContent = e?.data?.by ? `edited by ${String(e.data.by)}` : '';
    if (!sender.settled(name, e?.id ?? 0)) return;
    if (f.input.value !== value) f.input.value = value;
  }

  const mount = (parent, spec, name) => {
    const f = buildField(spec, name);
    f.input.addEventListener('input', () => sender.send(name, { value: f.input.value, by: me.username }));
    parent.append(f.root);
    fields.set(name, f);
  };
  for (const spec of SHARED) mount($('shared'), spec, sharedEvent(spec.field));
  for (const spec of DRAFT) mount($('private'), spec, draftEvent(me.id, spec.field));

  sub = broker.subscribe({ events: eventsFor(me.id), onStatus: showStatus });
  // One change: one field; a reset clears the store: every field.
  sub.store.subscribe((change) => {
    if (change.type === 'event') show(change.name);
    else for (const name of fields.keys()) show(name);
  });
  session = { sub, fields };
  $('signin').hidden = true;
  $('editor').hidden = false;
}

function stop() {
  session?.sub.stop();
  session = null;
  broker.logout();
  $('shared').replaceChildren();
  $('private').replaceChildren();
  $('who').textContent = '';
  showStatus({ status: 'stopped', lastError: null });
  $('status').textContent = 'signed out';
  $('editor').hidden = true;
  $('signin').hidden = false;
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('signin-error').textContent = '';
  const username = $('username').value;
  const password = $('password').value;
  $('join').disabled = true;
  try {
    try {
      await broker.register(username, password);
    } catch (e) {
      if (e.status !== 409) throw e; // 409: the name exists; try it as a sign-in
    }
    await broker.login(username, password);
    $('password').value = '';
    start();
  } catch (e) {
    $('signin-error').textContent = e.message;
  } finally {
    $('join').disabled = false;
  }
});
$('signout').addEventListener('click', stop);
