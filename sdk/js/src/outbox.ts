/**
 * The outbox: every send and forward the user made, from the moment they hit "send" until the server
 * has persisted it or refused it for good. Pure state machine (the caller passes `now`, sends the
 * requests and owns the timers) whose entries are plain JSON, so a browser can keep them in IndexedDB
 * and finish them after a reload.
 *
 *   pending ──reply accepted──► accepted (seq) ──ack event, or a confirmation answered persisted──► persisted (dropped)
 *      │ ▲  └──reply persisted (a resend of a stored message)──────────────────────────────────────► persisted
 *      │ └── disconnect / unavailable (backoff) / rate_limited (the named wait): same client_msg_id
 *      └──── final refusal (content_blocked, user_muted, …) ──► failed (code, message) ──retry()──► pending
 *
 * The `persisted` ack event reaches only the sender's connections open when persistence answers, so one
 * due while the socket was down never comes. An accepted entry is therefore *confirmed*: resent once,
 * same `client_msg_id` and request, on the next connection and whenever it has waited `confirmAfterMs`
 * for its ack; the server answers a resend with the original seq, `status: "persisted"` once the store
 * has the message (else `accepted`: the ack event or a later confirmation settles it). Confirmations
 * never hold up a conversation's queue (the entry is sequenced already), are not attempts, cannot fail
 * an entry, go out at most one per entry and one per `confirmIntervalMs`.
 *
 * Exactly-once rests on the server: a resend with the same `client_msg_id` returns the original seq
 * (`duplicate: true`) and creates nothing, so the outbox may resend whenever it is unsure whether a
 * request arrived. Order rests on one request in flight per conversation: the server sequences a
 * sender's messages in the order it receives them, and the head of a conversation's queue must be
 * accepted before the next one goes.
 */
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { retryAfterMs, type Ack, type ErrorBody, type ForwardRequest, type SendRequest } from './protocol.js';

export type OutboxState = 'pending' | 'accepted' | 'persisted' | 'failed';

export interface SendDraft {
  conversation_id: string;
  text: string;
  reply_to?: string;
  attachments?: string[];
  /** Normally generated; pass one to make a send idempotent across app restarts of your own. */
  client_msg_id?: string;
}

export interface ForwardDraft {
  conversation_id: string;
  source_conversation_id: string;
  message_id: string;
  client_msg_id?: string;
}

interface EntryCommon {
  client_msg_id: string;
  conversation_id: string;
  state: OutboxState;
  /** A request is on the wire; its reply decides what happens next. Never true after a restore. */
  in_flight: boolean;
  /** Requests made so far (resends included). */
  attempts: number;
  /** Transient failures in a row, for the backoff; reset by a success or a manual retry. */
  transient_failures: number;
  /** Earliest time (ms) of the next attempt: a rate limit's wait or a backoff. */
  not_before: number;
  created_at: number;
  accepted_at?: number;
  /**
   * Accepted entries: when to confirm next (resend to learn whether it is persisted); 0 or absent: as
   * soon as the connection is back. Set to `accepted_at + confirmAfterMs`, and to 0 by a disconnect.
   */
  confirm_at?: number;
  seq?: number;
  message_id?: string;
  /** The refusal of a `failed` entry, or the last transient error of a pending one. */
  error?: ErrorBody;
}

export interface SendEntry extends EntryCommon {
  kind: 'send';
  text: string;
  reply_to?: string;
  attachments?: string[];
}

export interface ForwardEntry extends EntryCommon {
  kind: 'forward';
  source_conversation_id: string;
  message_id_to_forward: string;
}

export type OutboxEntry = SendEntry | ForwardEntry;

export type OutboxRequest =
  | { type: 'message.send'; data: SendRequest }
  | { type: 'message.forward'; data: ForwardRequest };

/** Refusals that resending cannot change: the entry fails and waits for the user. */
export const FINAL_SEND_ERRORS: ReadonlySet<string> = new Set([
  'content_blocked',
  'user_muted',
  'user_banned',
  'validation_failed',
  'forbidden',
  'not_found',
  'payload_too_large',
  'conflict',
  'limit_exceeded',
  'unknown_event',
  'invalid_json',
]);

export interface OutboxOptions {
  /** Makes `client_msg_id`s; default: a random 128-bit id. Must give 1–128 printable ASCII characters. */
  newId?: () => string;
  /** Source of jitter for the transient-failure backoff. */
  random?: () => number;
  backoff?: BackoffOptions;
  /** `internal` errors are retried this many times before the entry fails (default 3). */
  maxInternalAttempts?: number;
  /**
   * An accepted entry whose `persisted` ack has not come after this long (ms) is confirmed, and again
   * this long after each confirmation answered `accepted` (default 30 000).
   */
  confirmAfterMs?: number;
  /** At most one confirmation starts per this many ms, across the outbox (default 100). */
  confirmIntervalMs?: number;
  /** At most this many confirmations are on the wire at once (default 4). */
  maxConfirmationsInFlight?: number;
}

/** A random id of 32 hex digits (128 bits), from `crypto.getRandomValues` when there is one. */
export function randomClientMsgId(random: () => number = Math.random): string {
  const bytes = new Uint8Array(16);
  const crypto = (globalThis as { crypto?: { getRandomValues?: (array: Uint8Array) => Uint8Array } }).crypto;
  if (crypto?.getRandomValues && random === Math.random) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(random() * 256) & 0xff;
  return 'cm_' + Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

const PRINTABLE_ID = /^[\x21-\x7e]{1,128}$/;

export class Outbox {
  private entries: OutboxEntry[] = [];
  private readonly newId: () => string;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly maxInternalAttempts: number;
  private readonly confirmAfterMs: number;
  private readonly confirmIntervalMs: number;
  private readonly maxConfirmationsInFlight: number;
  /** No confirmation starts before this time (the interval between them, or a rate limit's wait). */
  private confirmNotBefore = 0;

  constructor(options: OutboxOptions = {}, restored: readonly OutboxEntry[] = []) {
    this.random = options.random ?? Math.random;
    this.newId = options.newId ?? (() => randomClientMsgId(this.random));
    this.backoff = options.backoff ?? {};
    this.maxInternalAttempts = options.maxInternalAttempts ?? 3;
    this.confirmAfterMs = options.confirmAfterMs ?? 30_000;
    this.confirmIntervalMs = options.confirmIntervalMs ?? 100;
    this.maxConfirmationsInFlight = Math.max(1, options.maxConfirmationsInFlight ?? 4);
    // Whatever was on the wire when the snapshot was taken may or may not have arrived: resend it (same
    // id); accepted entries may have missed their ack meanwhile: confirm them on the first connection.
    this.entries = restored.filter((entry) => entry.state !== 'persisted').map(restoredEntry);
  }

  /**
   * Adds entries restored from storage after the outbox was created (entries made since stay first:
   * they were made in this session; restored ones have waited longer but have no order with them).
   */
  adopt(restored: readonly OutboxEntry[]): void {
    for (const entry of restored) {
      if (entry.state === 'persisted' || this.find(entry.client_msg_id)) continue;
      this.entries.push(restoredEntry(entry));
    }
  }

  send(draft: SendDraft, now: number): SendEntry {
    const entry: SendEntry = {
      ...this.common(draft.conversation_id, draft.client_msg_id, now),
      kind: 'send',
      text: draft.text,
      ...(draft.reply_to !== undefined ? { reply_to: draft.reply_to } : {}),
      ...(draft.attachments !== undefined ? { attachments: [...draft.attachments] } : {}),
    };
    this.entries.push(entry);
    return { ...entry };
  }

  forward(draft: ForwardDraft, now: number): ForwardEntry {
    const entry: ForwardEntry = {
      ...this.common(draft.conversation_id, draft.client_msg_id, now),
      kind: 'forward',
      source_conversation_id: draft.source_conversation_id,
      message_id_to_forward: draft.message_id,
    };
    this.entries.push(entry);
    return { ...entry };
  }

  private common(conversationId: string, clientMsgId: string | undefined, now: number): EntryCommon {
    const id = clientMsgId ?? this.newId();
    if (!PRINTABLE_ID.test(id)) throw new Error('client_msg_id must be 1-128 printable ASCII characters');
    if (this.find(id)) throw new Error(`client_msg_id ${id} is already in the outbox`);
    return {
      client_msg_id: id,
      conversation_id: conversationId,
      state: 'pending',
      in_flight: false,
      attempts: 0,
      transient_failures: 0,
      not_before: now,
      created_at: now,
    };
  }

  /**
   * The requests to make now, marked in flight: per conversation, the oldest pending entry, when nothing
   * of that conversation is in flight and its wait is over. Failed entries do not hold the queue up.
   */
  takeDue(now: number): Array<{ entry: OutboxEntry; request: OutboxRequest }> {
    const due: Array<{ entry: OutboxEntry; request: OutboxRequest }> = [];
    for (const head of this.heads()) {
      if (head.in_flight || head.not_before > now) continue;
      head.in_flight = true;
      head.attempts += 1;
      due.push({ entry: { ...head }, request: toRequest(head) });
    }
    return due;
  }

  /** When the next waiting head becomes due (for the caller's timer); `undefined` when none waits. */
  nextDueAt(): number | undefined {
    const waits = this.heads()
      .filter((head) => !head.in_flight)
      .map((head) => head.not_before);
    return waits.length > 0 ? Math.min(...waits) : undefined;
  }

  /**
   * Confirmations to make now, marked in flight: accepted entries whose ack has not come, whose
   * `confirm_at` has passed, oldest first — at most one per `confirmIntervalMs` and
   * `maxConfirmationsInFlight` on the wire. The request is the entry's own (same `client_msg_id`);
   * `attempts` is not counted. Independent of the per-conversation queues: the entry is sequenced.
   */
  takeConfirmations(now: number): Array<{ entry: OutboxEntry; request: OutboxRequest }> {
    if (now < this.confirmNotBefore || this.confirmationsInFlight() >= this.maxConfirmationsInFlight) return [];
    const entry = this.entries.find((candidate) => isConfirmable(candidate) && (candidate.confirm_at ?? 0) <= now);
    if (!entry) return [];
    entry.in_flight = true;
    this.confirmNotBefore = now + this.confirmIntervalMs;
    return [{ entry: { ...entry }, request: toRequest(entry) }];
  }

  /**
   * When the next confirmation may start (for the caller's timer); `undefined` when none waits, or
   * when as many as allowed are on the wire (their replies make room).
   */
  nextConfirmationAt(): number | undefined {
    if (this.confirmationsInFlight() >= this.maxConfirmationsInFlight) return undefined;
    const waits = this.entries.filter(isConfirmable).map((entry) => entry.confirm_at ?? 0);
    return waits.length > 0 ? Math.max(this.confirmNotBefore, Math.min(...waits)) : undefined;
  }

  /**
   * The reply to a send or a confirmation. `accepted`: the server has it (in Kafka) under `seq`; a
   * confirmation so answered leaves the entry accepted until its ack event or the next confirmation.
   * `persisted` (a resend of a message the store has): the entry's work is done, as with the ack event.
   */
  replied(ack: Ack, now: number): OutboxEntry | undefined {
    if (ack.status === 'persisted') return this.persisted(ack);
    const entry = this.find(ack.client_msg_id);
    if (!entry) return undefined;
    entry.in_flight = false;
    entry.seq = ack.seq;
    entry.message_id = ack.message_id;
    if (entry.state === 'accepted') {
      // A confirmation: not persisted yet. Ask again later (or on the next connection).
      entry.confirm_at = now + this.confirmAfterMs;
      return { ...entry };
    }
    entry.transient_failures = 0;
    delete entry.error;
    entry.state = 'accepted';
    entry.accepted_at = now;
    entry.confirm_at = now + this.confirmAfterMs;
    return { ...entry };
  }

  /** The `ack` event: MongoDB has it. The entry's work is done and it leaves the outbox. */
  persisted(ack: Ack): OutboxEntry | undefined {
    const index = this.entries.findIndex((entry) => entry.client_msg_id === ack.client_msg_id);
    const entry = this.entries[index];
    if (!entry) return undefined;
    this.entries.splice(index, 1);
    return { ...entry, state: 'persisted', in_flight: false, seq: ack.seq, message_id: ack.message_id };
  }

  /** The send's failure reply. Decides between failing for good and trying again, and when. */
  refused(clientMsgId: string, error: ErrorBody, now: number): OutboxEntry | undefined {
    const entry = this.find(clientMsgId);
    if (entry?.state === 'accepted') return this.confirmationFailed(clientMsgId, error, now);
    if (!entry || entry.state !== 'pending') return entry ? { ...entry } : undefined;
    entry.in_flight = false;
    entry.error = { code: error.code, message: error.message };
    const internalExhausted = error.code === 'internal' && entry.transient_failures + 1 >= this.maxInternalAttempts;
    if (FINAL_SEND_ERRORS.has(error.code) || internalExhausted) {
      entry.state = 'failed';
    } else if (error.code === 'rate_limited') {
      // The server named the wait; waiting less only earns another refusal.
      entry.not_before = now + retryAfterMs(error);
    } else {
      // `unavailable`, `internal`, and codes this SDK does not know: the server asks for the same
      // request again, and sends are idempotent, so retry with backoff rather than give up.
      entry.not_before = now + backoffDelay(entry.transient_failures, this.random(), this.backoff);
      entry.transient_failures += 1;
    }
    return { ...entry };
  }

  /**
   * A confirmation got an error (or no reply in time). Accepted means sequenced for good: nothing a
   * resend is refused for (a rate limit, a mute or a rule added since) changes that, so the entry stays
   * accepted and is confirmed again later: after a rate limit's wait, else after `confirmAfterMs`.
   */
  confirmationFailed(clientMsgId: string, error: ErrorBody, now: number): OutboxEntry | undefined {
    const entry = this.find(clientMsgId);
    if (!entry || entry.state !== 'accepted') return entry ? { ...entry } : undefined;
    entry.in_flight = false;
    if (error.code === 'rate_limited') {
      const wait = retryAfterMs(error);
      entry.confirm_at = now + wait;
      this.confirmNotBefore = Math.max(this.confirmNotBefore, now + wait);
    } else {
      entry.confirm_at = now + this.confirmAfterMs;
    }
    return { ...entry };
  }

  /**
   * The connection dropped: replies to requests in flight will never come. They go again on the next
   * connection, immediately and with the same id, so the server answers with the original if it had it.
   * Accepted entries may have lost their `persisted` ack with the connection: each is confirmed on the
   * next one.
   */
  disconnected(): void {
    for (const entry of this.entries) {
      entry.in_flight = false;
      if (entry.state === 'accepted') entry.confirm_at = 0;
    }
    this.confirmNotBefore = 0;
  }

  /** A request that timed out without a reply: treated like a transient failure (or a failed confirmation). */
  timedOut(clientMsgId: string, now: number): OutboxEntry | undefined {
    return this.refused(clientMsgId, { code: 'unavailable', message: 'no reply in time' }, now);
  }

  /** The user asks to try a failed entry again. */
  retry(clientMsgId: string, now: number): OutboxEntry | undefined {
    const entry = this.find(clientMsgId);
    if (!entry || entry.state !== 'failed') return undefined;
    entry.state = 'pending';
    entry.transient_failures = 0;
    entry.not_before = now;
    delete entry.error;
    return { ...entry };
  }

  /** Drops an entry that is not on the wire (a failed one the user gave up on, or a pending one). */
  discard(clientMsgId: string): boolean {
    const index = this.entries.findIndex((entry) => entry.client_msg_id === clientMsgId && !entry.in_flight);
    if (index < 0) return false;
    this.entries.splice(index, 1);
    return true;
  }

  /**
   * Forgets accepted entries whose `ack` event never came (it goes only to the connections open at the
   * time; one lost to a reconnect never comes). Accepted means the message will be persisted anyway.
   */
  prune(now: number, acceptedTtlMs = 5 * 60_000): OutboxEntry[] {
    const dropped = this.entries.filter(
      (entry) => entry.state === 'accepted' && now - (entry.accepted_at ?? now) >= acceptedTtlMs,
    );
    this.entries = this.entries.filter((entry) => !dropped.includes(entry));
    return dropped.map((entry) => ({ ...entry }));
  }

  get(clientMsgId: string): OutboxEntry | undefined {
    const entry = this.find(clientMsgId);
    return entry ? { ...entry } : undefined;
  }

  /** Entries of one conversation in the order they were made (what a timeline shows in place). */
  forConversation(conversationId: string): OutboxEntry[] {
    return this.entries.filter((entry) => entry.conversation_id === conversationId).map((entry) => ({ ...entry }));
  }

  /** Everything, as plain JSON (for storage). */
  snapshot(): OutboxEntry[] {
    return this.entries.map((entry) => structuredCloneEntry(entry));
  }

  get size(): number {
    return this.entries.length;
  }

  private find(clientMsgId: string): OutboxEntry | undefined {
    return this.entries.find((entry) => entry.client_msg_id === clientMsgId);
  }

  private confirmationsInFlight(): number {
    return this.entries.filter((entry) => entry.state === 'accepted' && entry.in_flight).length;
  }

  /** Per conversation, the oldest entry still pending (the queue's head). */
  private heads(): OutboxEntry[] {
    const heads = new Map<string, OutboxEntry>();
    for (const entry of this.entries) {
      if (entry.state === 'pending' && !heads.has(entry.conversation_id)) heads.set(entry.conversation_id, entry);
    }
    return [...heads.values()];
  }
}

export function toRequest(entry: OutboxEntry): OutboxRequest {
  if (entry.kind === 'forward') {
    return {
      type: 'message.forward',
      data: {
        conversation_id: entry.conversation_id,
        client_msg_id: entry.client_msg_id,
        source_conversation_id: entry.source_conversation_id,
        message_id: entry.message_id_to_forward,
      },
    };
  }
  return {
    type: 'message.send',
    data: {
      conversation_id: entry.conversation_id,
      client_msg_id: entry.client_msg_id,
      text: entry.text,
      ...(entry.reply_to !== undefined ? { reply_to: entry.reply_to } : {}),
      ...(entry.attachments !== undefined && entry.attachments.length > 0 ? { attachments: [...entry.attachments] } : {}),
    },
  };
}

/** An accepted entry that is not being confirmed right now. */
function isConfirmable(entry: OutboxEntry): boolean {
  return entry.state === 'accepted' && !entry.in_flight;
}

/** An entry read back from storage: nothing of it is on the wire; an accepted one is confirmed first thing. */
function restoredEntry(entry: OutboxEntry): OutboxEntry {
  return { ...entry, in_flight: false, ...(entry.state === 'accepted' ? { confirm_at: 0 } : {}) };
}

function structuredCloneEntry(entry: OutboxEntry): OutboxEntry {
  return JSON.parse(JSON.stringify(entry)) as OutboxEntry;
}
