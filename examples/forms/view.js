// view.js: the DOM of one form field (label, control, "edited by" line). Values only ever reach
// the page as text (value, textContent), never as markup: other users choose them.

/**
 * @param {{field: string, label: string, kind: 'input'|'date'|'select'|'textarea', options?: string[]}} spec
 * @param {string} eventName
 * @returns {{root: HTMLElement, input: HTMLInputElement|HTMLSelectElement|HTMLTextAreaElement, by: HTMLElement}}
 */
export function buildField(spec, eventName) {
  const root = document.createElement('label');
  root.textContent = spec.label;
  let input;
  if (spec.kind === 'textarea') {
    input = document.createElement('textarea');
  } else if (spec.kind === 'select') {
    input = document.createElement('select');
    for (const v of ['', ...spec.options]) {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = v || '—';
      input.append(o);
    }
  } else {
    input = document.createElement('input');
    input.type = spec.kind === 'date' ? 'date' : 'text';
  }
  input.id = `f-${spec.field}`;
  input.dataset.event = eventName;
  const by = document.createElement('span');
  by.className = 'by';
  by.id = `by-${spec.field}`;
  root.append(input, by);
  return { root, input, by };
}
