/**
 * Runs the outbox against the connection: sends what is due, confirms accepted sends whose `persisted`
 * ack may have been lost (after every reconnect, once the client is online again, and when an ack is
 * overdue), feeds replies and `ack` events back into the state machine, wakes up for rate-limit waits,
 * backoffs and overdue acks, and saves the outbox after every change so unfinished sends survive a reload.
 */
import type { Connection } from './connection.js';
import { CaasError } from './errors.js';
import { Outbox, type ForwardDraft, type OutboxEntry, type OutboxOptions, type OutboxRequest, type SendDraft } from './outbox.js';
import type { Ack } from './protocol.js';
import type { OutboxStorage } from './storage.js';

export interface OutboxDriverHost {
  connection: Pick<Connection, 'isReady' | 'request'>;
  now: () => number;
  /** An entry changed (state, seq, error) or left the outbox. */
  changed: (entry: OutboxEntry) => void;
  error: (error: Error) => void;
}

export class OutboxDriver {
  readonly outbox: Outbox;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private storageKey: string | undefined;
  private saving: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<(entry: OutboxEntry) => void>();
  /**
   * Confirmations go out only once the client is online (caught up) on the current connection, so the
   * resubscribes of a reconnect get the request budget first; new sends go as soon as it is ready.
   */
  private confirming = false;

  constructor(
    private readonly host: OutboxDriverHost,
    private readonly storage: OutboxStorage | undefined,
    outboxOptions: OutboxOptions = {},
  ) {
    this.outbox = new Outbox(outboxOptions);
  }

  /**
   * Restores what was saved under `key` (once per key: the signed-in user) and saves there from now on.
   * Saves wait for the restore, so a send made meanwhile cannot overwrite what was stored before it.
   */
  useStorageKey(key: string): void {
    const storage = this.storage;
    if (!storage || this.storageKey === key) return;
    this.storageKey = key;
    this.saving = this.saving
      .then(() => storage.load(key))
      .then((entries) => {
        this.outbox.adopt(entries);
        for (const entry of entries) this.host.changed(entry);
      })
      .catch((error: unknown) => this.host.error(toError(error)));
    this.save();
    void this.saving.then(() => this.pump());
  }

  send(draft: SendDraft): OutboxEntry {
    return this.track(this.outbox.send(draft, this.host.now()));
  }

  forward(draft: ForwardDraft): OutboxEntry {
    return this.track(this.outbox.forward(draft, this.host.now()));
  }

  retry(clientMsgId: string): void {
    const entry = this.outbox.retry(clientMsgId, this.host.now());
    if (entry) this.track(entry);
  }

  discard(clientMsgId: string): void {
    const entry = this.outbox.get(clientMsgId);
    if (entry && this.outbox.discard(clientMsgId)) this.track(entry);
  }

  /** See `CaasClient.whenSent`. */
  whenSent(clientMsgId: string, status: 'accepted' | 'persisted'): Promise<OutboxEntry> {
    return new Promise((resolve, reject) => {
      const settle = (entry: OutboxEntry): void => {
        if (entry.client_msg_id !== clientMsgId) return;
        if (entry.state === 'failed') {
          this.waiters.delete(settle);
          reject(CaasError.fromBody(entry.error ?? { code: 'internal', message: 'the send failed' }));
        } else if (entry.state === 'persisted' || (status === 'accepted' && entry.state === 'accepted')) {
          this.waiters.delete(settle);
          resolve(entry);
        }
      };
      const current = this.outbox.get(clientMsgId);
      if (!current) {
        reject(new CaasError('not_found', `no send ${clientMsgId} in the outbox (already persisted, or discarded)`));
        return;
      }
      this.waiters.add(settle);
      settle(current);
    });
  }

  /** The `ack` event: the message is in MongoDB. */
  persisted(ack: Ack): void {
    const entry = this.outbox.persisted(ack);
    if (entry) this.track(entry, false);
  }

  /**
   * Replies to requests in flight will not come: they go again (same ids) on the next connection, and
   * accepted entries are confirmed there (their `persisted` ack may have been lost with this one).
   */
  disconnected(): void {
    this.confirming = false;
    this.outbox.disconnected();
  }

  /** The client is online (connected and caught up): confirmations may go out. */
  online(): void {
    this.confirming = true;
    this.pump();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Sends every entry that is due and the confirmations that are, and sets a timer for the next one that waits. */
  pump(): void {
    this.stop();
    for (const dropped of this.outbox.prune(this.host.now())) this.track(dropped, false);
    if (!this.host.connection.isReady) return;
    for (const { entry, request } of this.outbox.takeDue(this.host.now())) {
      this.host.changed(entry);
      this.request(request)
        .then(
          (ack) => this.outbox.replied(ack, this.host.now()),
          (error: unknown) => {
            const failure = toCaasError(error);
            // A dropped connection already put the entry back in the queue; the next `ready` resends it.
            if (isDisconnect(failure)) return undefined;
            if (failure.code === 'timeout') return this.outbox.timedOut(entry.client_msg_id, this.host.now());
            return this.outbox.refused(entry.client_msg_id, failure.toBody(), this.host.now());
          },
        )
        .then(
          // No entry any more: its `persisted` ack was handled before this continuation ran (`ws` under
          // Node dispatches all frames of one read synchronously, ahead of promise continuations), and
          // it left the outbox then, without pumping. The conversation's queue must move on all the same.
          (updated) => (updated ? this.track(updated) : this.pump()),
          (error: unknown) => this.host.error(toError(error)),
        );
    }
    if (this.confirming) for (const { entry, request } of this.outbox.takeConfirmations(this.host.now())) this.confirm(entry, request);
    const waits = [this.outbox.nextDueAt(), this.confirming ? this.outbox.nextConfirmationAt() : undefined].filter(
      (at): at is number => at !== undefined,
    );
    if (waits.length > 0) this.timer = setTimeout(() => this.pump(), Math.max(0, Math.min(...waits) - this.host.now()));
  }

  /**
   * Resends an accepted entry to learn whether the store has it: `persisted` settles it like the ack
   * event; `accepted` or an error leaves it accepted, to be confirmed again later (never failed).
   */
  private confirm(entry: OutboxEntry, request: OutboxRequest): void {
    this.request(request)
      .then(
        (ack) => this.outbox.replied(ack, this.host.now()),
        (error: unknown) => {
          const failure = toCaasError(error);
          // The drop reset it: it is confirmed again on the next connection.
          if (isDisconnect(failure)) return undefined;
          return this.outbox.confirmationFailed(entry.client_msg_id, failure.toBody(), this.host.now());
        },
      )
      .then(
        (updated) => (updated?.state === 'persisted' ? this.track(updated) : this.pump()),
        (error: unknown) => this.host.error(toError(error)),
      );
  }

  private request(request: OutboxRequest): Promise<Ack> {
    return request.type === 'message.send'
      ? this.host.connection.request('message.send', request.data)
      : this.host.connection.request('message.forward', request.data);
  }

  private track(entry: OutboxEntry, pump = true): OutboxEntry {
    this.host.changed(entry);
    for (const waiter of [...this.waiters]) waiter(entry);
    this.save();
    if (pump) this.pump();
    return entry;
  }

  /** Chained so saves land in order; each writes the whole (small) outbox as it is now. */
  private save(): void {
    const storage = this.storage;
    const key = this.storageKey;
    if (!storage || key === undefined) return;
    this.saving = this.saving
      .then(() => storage.save(key, this.outbox.snapshot()))
      .catch((error: unknown) => this.host.error(toError(error)));
  }
}

function toCaasError(error: unknown): CaasError {
  return error instanceof CaasError ? error : new CaasError('internal', String(error));
}

function isDisconnect(error: CaasError): boolean {
  return error.code === 'disconnected' || error.code === 'closed';
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
