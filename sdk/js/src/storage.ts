/**
 * Where the outbox survives a reload. The client saves the whole outbox (small: only unfinished sends)
 * after every change, under a key per user, and restores it once it knows who is signed in.
 */
import type { OutboxEntry } from './outbox.js';

export interface OutboxStorage {
  load(key: string): Promise<OutboxEntry[]>;
  save(key: string, entries: readonly OutboxEntry[]): Promise<void>;
}

/** Keeps nothing across reloads; the default where there is no IndexedDB (Node, some private modes). */
export class MemoryOutboxStorage implements OutboxStorage {
  private readonly stored = new Map<string, OutboxEntry[]>();

  async load(key: string): Promise<OutboxEntry[]> {
    return structuredCopy(this.stored.get(key) ?? []);
  }

  async save(key: string, entries: readonly OutboxEntry[]): Promise<void> {
    this.stored.set(key, structuredCopy(entries));
  }
}

const STORE = 'outbox';

/** One object store, one record per user key holding that user's entries. */
export class IndexedDbOutboxStorage implements OutboxStorage {
  private database: Promise<IDBDatabase> | undefined;

  constructor(
    private readonly databaseName = 'caas-client',
    private readonly factory: IDBFactory = indexedDB,
  ) {}

  static available(): boolean {
    return typeof indexedDB !== 'undefined';
  }

  async load(key: string): Promise<OutboxEntry[]> {
    const database = await this.open();
    const value = await request<unknown>(database.transaction(STORE, 'readonly').objectStore(STORE).get(key));
    return Array.isArray(value) ? (value as OutboxEntry[]) : [];
  }

  async save(key: string, entries: readonly OutboxEntry[]): Promise<void> {
    const database = await this.open();
    const transaction = database.transaction(STORE, 'readwrite');
    transaction.objectStore(STORE).put(structuredCopy(entries), key);
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB write failed'));
      transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB write aborted'));
    });
  }

  private open(): Promise<IDBDatabase> {
    this.database ??= new Promise((resolve, reject) => {
      const opening = this.factory.open(this.databaseName, 1);
      opening.onupgradeneeded = () => {
        if (!opening.result.objectStoreNames.contains(STORE)) opening.result.createObjectStore(STORE);
      };
      opening.onsuccess = () => resolve(opening.result);
      opening.onerror = () => reject(opening.error ?? new Error('IndexedDB open failed'));
    });
    return this.database;
  }
}

/** IndexedDB when the environment has it, else memory. */
export function defaultOutboxStorage(): OutboxStorage {
  return IndexedDbOutboxStorage.available() ? new IndexedDbOutboxStorage() : new MemoryOutboxStorage();
}

function request<T>(req: IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function structuredCopy(entries: readonly OutboxEntry[]): OutboxEntry[] {
  return JSON.parse(JSON.stringify(entries)) as OutboxEntry[];
}
