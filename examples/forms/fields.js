// fields.js: what the form holds and the event name of each field. Shared fields are form.<field>
// (rules: any user reads and writes them); the private draft is draft.<user id>.<field>, which the
// rules let only that user publish and read. Each event's data is {value, by}.

export const SHARED = Object.freeze([
  { field: 'title', label: 'Title', kind: 'input' },
  { field: 'owner', label: 'Owner', kind: 'input' },
  { field: 'due', label: 'Due date', kind: 'date' },
  { field: 'status', label: 'Status', kind: 'select', options: ['idea', 'planned', 'doing', 'done'] },
  { field: 'notes', label: 'Notes', kind: 'textarea' },
]);

export const DRAFT = Object.freeze([
  { field: 'draft', label: 'My private draft (only you see it)', kind: 'textarea' },
]);

export const sharedEvent = (field) => `form.${field}`;
export const draftEvent = (userId, field) => `draft.${userId}.${field}`;

/** Every event name a user's page follows: the shared fields and that user's own draft. */
export function eventsFor(userId) {
  return [...SHARED.map((f) => sharedEvent(f.field)), ...DRAFT.map((f) => draftEvent(userId, f.field))];
}
