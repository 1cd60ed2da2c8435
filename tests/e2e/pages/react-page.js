// react-page.js: a component on useBroker() for client_browser.test.js, rendered in StrictMode
// (effects run twice, as in development). It renders before the login (no token: status stopped),
// and window.login() logs in and renders again, which must subscribe.
import { createBroker } from '/clients/js/index.js';
import { useBroker } from '/clients/react/index.js';

const { createElement: h, StrictMode } = window.React;
const p = new URLSearchParams(location.hash.slice(1));
const client = createBroker({ url: p.get('broker') });
window.renders = 0;

function Counter({ broker }) {
  const { state, status, insert } = useBroker(broker, { events: ['count', 'note'] });
  window.renders += 1;
  const n = state.count?.n ?? 0;
  return h('div', null,
    h('p', { id: 'status' }, status),
    h('p', { id: 'count' }, String(n)),
    h('p', { id: 'note' }, state.note ?? ''),
    h('button', { id: 'inc', onClick: () => { insert('count', { n: n + 1 }).catch((e) => { window.insertError = e.message; }); } }, '+1'));
}

const root = window.ReactDOM.createRoot(document.getElementById('root'));
const render = () => root.render(h(StrictMode, null, h(Counter, { broker: client })));
render();
window.login = async () => {
  await client.login(p.get('u'), p.get('p'));
  render();
};
window.unmount = () => root.unmount();
