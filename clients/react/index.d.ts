// index.d.ts: the types of @broker/react (hand-written; the package has no build step). Self-
// contained on purpose: the package depends on React only, so the client is described by the
// shape the hook uses (what @broker/client's createBroker() returns satisfies it).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Status = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/** What the hook needs of a client: @broker/client's Broker has all of it. */
export interface BrokerLike {
  readonly token: string | null;
  subscribe(opts: {
    events: string[];
    // any: the hook hands back the store it got, of whatever type the client's subscribe() made.
    store?: any;
    onStatus?(status: { status: Status; lastError: any }): void;
  }): {
    stop(): void;
    readonly store: {
      subscribe(listener: () => void): () => void;
      all(): Readonly<Record<string, Json | undefined>>;
    };
  };
  insert(event: string, data: Json, opts?: { idempotencyKey?: string }): Promise<{ id: number; event: string }>;
}

export interface UseBrokerOptions {
  /** The event names to follow (see @broker/client's subscribe). */
  events: string[];
}

export interface UseBrokerResult<S extends Record<string, Json> = Record<string, Json>> {
  /** The latest data of every followed name: an immutable object, replaced on every change. */
  state: Readonly<Partial<S>>;
  /** 'stopped' while there is no client or it holds no token. */
  status: Status;
  /** A BrokerError from @broker/client: why it is reconnecting or stopped, or a warning while live. */
  lastError: (Error & { status?: number; code?: string }) | null;
  /** client.insert, stable for a given client. */
  insert(event: string, data: Json, opts?: { idempotencyKey?: string }): Promise<{ id: number; event: string }>;
}

/**
 * Subscribes while mounted and while `client` holds a token (it subscribes again after a login or
 * a logout on it, and when the names change); renders with the live state and status.
 */
export function useBroker<S extends Record<string, Json> = Record<string, Json>>(
  client: BrokerLike | null | undefined,
  options: UseBrokerOptions,
): UseBrokerResult<S>;
