// client-page.js: drives @broker/client in the page for client_browser.test.js, with the native
// EventSource. The fragment (never sent to the page server) gives the broker URL, the credentials,
// and the event names. What happened is kept on window for the test: events, statuses, tickets.
import { createBroker } from '/clients/js/index.js';

const p = new URLSearchParams(location.hash.slice(1));
const $ = (id) => document.getElementById(id);
window.events = [];
window.statuses = [];
window.tickets = 0;

const broker = createBroker({
  url: p.get('broker'),
  // The page's own fetch, counting the tickets taken (each renewal takes one).
  fetch: (url, init) => {
    if (String(url).endsWith('/sse/ticket')) window.tickets += 1;
    return fetch(url, init);
  },
});
window.broker = broker;

try {
  await broker.login(p.get('u'), p.get('p'));
  window.sub = broker.subscribe({
    events: p.get('events').split(','),
    onEvent: (e) => window.events.push({ name: e.name, id: e.id, data: e.data }),
    onStatus: (s) => { window.statuses.push(s.status); $('status').textContent = s.status; },
    onState: (state) => { $('state').textContent = JSON.stringify(state); },
  });
} catch (e) {
  $('status').textContent = `failed: ${e.message}`;
}
