// index.d.ts: the types of @broker/client (hand-written; the package has no build step).

/** Any value JSON can carry: what an event's data is. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The error every failed call throws and a subscription reports as lastError. */
export class BrokerError extends Error {
  constructor(message: string, info?: {
    status?: number; code?: BrokerErrorCode; retryAfter?: number; reason?: string; exp?: number; cause?: unknown;
  });
  readonly name: 'BrokerError';
  /** HTTP status of the refusal; 0 when the server did not answer (or an EventSource cannot tell). */
  readonly status: number;
  readonly code: BrokerErrorCode;
  /** Seconds, from a Retry-After header (429, 503). */
  readonly retryAfter?: number;
  /** The server's reason, for code 'revoked' ("user revoked", "password changed", "roles changed"). */
  readonly reason?: string;
  /** Unix seconds, for code 'token_expiring'. */
  readonly exp?: number;
}

export type BrokerErrorCode = 'http' | 'network' | 'stream' | 'token_expiring' | 'revoked';

/** One event as the stream delivers it. */
export interface BrokerEvent<T = Json> {
  readonly name: string;
  readonly id: number;
  readonly data: T;
}

/** The latest event of every name, kept up to date by subscriptions. */
export interface Store<S extends Record<string, Json> = Record<string, Json>> {
  /** The latest data of one name (undefined before any). */
  get<K extends keyof S & string>(name: K): S[K] | undefined;
  /** The latest event (id and data) of one name. */
  entry(name: string): Readonly<{ id: number; data: Json }> | undefined;
  has(name: string): boolean;
  /** An immutable object name → data; the same object until the next change, then a new one. */
  all(): Readonly<Partial<S>>;
  /** Incremented on every change. */
  readonly version: number;
  readonly size: number;
  /** Called after every change; returns the function that unsubscribes. */
  subscribe(listener: (change: StoreChange) => void): () => void;
  /** Record an event (ignored when the name already holds this id or a later one); true if it changed. */
  apply(event: { name: string; id: number; data: Json }): boolean;
  /** Forget everything; true if there was anything. */
  clear(): boolean;
}

export type StoreChange =
  | { type: 'event'; name: string; id: number; data: Json }
  | { type: 'clear' };

/** onError receives what a listener throws (default: rethrown from a microtask). */
export function createStore<S extends Record<string, Json> = Record<string, Json>>(options?: { onError?: (error: unknown) => void }): Store<S>;

export type Status = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface StatusInfo {
  readonly status: Status;
  /** The last problem: why it is reconnecting or stopped, or a warning while live (token_expiring). */
  readonly lastError: BrokerError | null;
}

/** What renews the login token: return a new JWT, or call broker.login() / broker.setToken() yourself. */
export type RefreshHook = (info: {
  /** The exp (Unix seconds) of the credential about to run out; null when the token was refused already. */
  exp: number | null;
  broker: Broker;
}) => Promise<string | void> | string | void;

export interface SubscribeOptions<S extends Record<string, Json> = Record<string, Json>> {
  /** The event names to follow (also the ?events= filter): a native EventSource only delivers named events it listens for. */
  events: string[];
  /** Every event applied, snapshot and live, in id order, once each. */
  onEvent?: (event: BrokerEvent) => void;
  /** After every change of the state: the new immutable state and the store's version. */
  onState?: (state: Readonly<Partial<S>>, version: number) => void;
  onStatus?: (status: StatusInfo) => void;
  /** Renews the token on token_expiring for this subscription (else createBroker's onTokenExpiring). */
  refresh?: RefreshHook;
  /** Use this store instead of a new one (several subscriptions, or one the UI owns). */
  store?: Store<S>;
  /** Overrides createBroker's EventSource. */
  EventSource?: EventSourceConstructor;
}

export interface Subscription<S extends Record<string, Json> = Record<string, Json>> {
  /** Close the stream for good (status 'stopped'). */
  stop(): void;
  /** store.all() */
  readonly state: Readonly<Partial<S>>;
  readonly status: Status;
  readonly lastError: BrokerError | null;
  /** The id of the last event applied: where a reconnection resumes. */
  readonly lastEventId: number | null;
  readonly store: Store<S>;
}

/** The claims of the login token, read without verification. */
export interface User {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
  /** Unix seconds. */
  readonly exp: number;
}

export interface Me {
  id: string;
  username: string;
  roles: string[];
  totp: boolean;
}

export interface EventSourceConstructor {
  new (url: string, init?: unknown): EventSourceLike;
}

export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: any) => void): void;
  close(): void;
}

export interface BrokerOptions {
  /** The broker's base URL, e.g. "http://127.0.0.1:8080" ('' = the page's own origin). */
  url?: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Defaults to the global EventSource (browsers); in Node.js pass the eventsource package's. */
  EventSource?: EventSourceConstructor;
  /** Renews the login token when a stream warns token_expiring (or when a ticket is refused). */
  onTokenExpiring?: RefreshHook;
}

export interface Broker {
  readonly url: string;
  /** The login token, kept in memory only; null when logged out. */
  readonly token: string | null;
  /** The token's user, or null. */
  readonly user: User | null;
  /** Use a token obtained elsewhere (null to forget it); moves streams that warned token_expiring over to it. */
  setToken(jwt: string | null): void;
  register(username: string, password: string): Promise<{ id: string; username: string }>;
  login(username: string, password: string, opts?: { totp?: string }): Promise<{ jwt: string }>;
  /** Forget the token and stop every subscription. */
  logout(): void;
  /** Resolves once the event is durably stored. */
  insert(event: string, data: Json, opts?: { idempotencyKey?: string }): Promise<{ id: number; event: string }>;
  /** A stream ticket for /sse?ticket= (subscribe takes them by itself). */
  ticket(): Promise<{ ticket: string; expires_in: number }>;
  me(): Promise<Me>;
  subscribe<S extends Record<string, Json> = Record<string, Json>>(opts: SubscribeOptions<S>): Subscription<S>;
}

export function createBroker(options?: BrokerOptions): Broker;

/** The reserved frame names: reset, token_expiring, revoked. */
export const CONTROL_FRAMES: readonly ['reset', 'token_expiring', 'revoked'];

export type Frame =
  | { kind: 'event'; name: string; id: number; data: Json }
  | { kind: 'reset'; reason: string }
  | { kind: 'token_expiring'; exp: number }
  | { kind: 'revoked'; reason: string }
  | { kind: 'invalid'; why: string };

/** One EventSource message under its type → what it means. */
export function parseFrame(type: string, message: { data: string; lastEventId?: string }): Frame;
/** Validates subscription names (throws TypeError); returns them de-duplicated. */
export function checkEventNames(events: unknown): string[];
export function streamUrl(base: string, opts: { ticket: string; events: string[]; lastEventId?: number | null }): string;
/** The payload of a JWT, unverified, or null. */
export function claimsOf(jwt: string | null | undefined): Record<string, unknown> | null;
export function userOf(jwt: string | null | undefined): User | null;
