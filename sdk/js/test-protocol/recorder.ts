/**
 * What the server sent, kept for the type check: per request type the `data` of its successful replies,
 * per event type the `data` of its events, every error body, the in-band `auth` replies, the HTTP bodies
 * the SDK's `HttpApi` reads, and the frame envelopes themselves. The first sample of each kind is kept,
 * then further ones only when their shape differs (other keys, or null where a value was, …): one
 * message with `reply_to` and one without, the `ack` that is `accepted` and the one that is `duplicate`.
 */

/** At most this many samples of one kind (distinct shapes); enough to see every optional field. */
const MAX_SAMPLES = 6;

/** The shape of a JSON value: its keys and the kinds of their values, recursively; arrays by the union of their items. */
export function shapeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${[...new Set(value.map(shapeOf))].sort().join('|')}]`;
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${key}:${shapeOf(record[key])}`)
      .join(',')}}`;
  }
  return typeof value;
}

export class SampleSet {
  private readonly byKey = new Map<string, { samples: unknown[]; shapes: Set<string> }>();

  add(key: string, value: unknown): void {
    let entry = this.byKey.get(key);
    if (!entry) {
      entry = { samples: [], shapes: new Set() };
      this.byKey.set(key, entry);
    }
    const shape = shapeOf(value);
    if (entry.shapes.has(shape) || entry.samples.length >= MAX_SAMPLES) return;
    entry.shapes.add(shape);
    entry.samples.push(value);
  }

  keys(): string[] {
    return [...this.byKey.keys()].sort();
  }

  first(key: string): unknown {
    return this.byKey.get(key)?.samples[0];
  }

  rest(key: string): unknown[] {
    return this.byKey.get(key)?.samples.slice(1) ?? [];
  }

  all(): unknown[] {
    return [...this.byKey.values()].flatMap((entry) => entry.samples);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }
}

export class Recorder {
  /** Successful socket replies, by request type. */
  readonly replies = new SampleSet();
  /** Server events, by type. */
  readonly events = new SampleSet();
  /** Error bodies (failed replies, HTTP error bodies), by code. */
  readonly errors = new SampleSet();
  /** Replies to the in-band `auth` frame. */
  readonly auth = new SampleSet();
  /** HTTP response bodies, by route ("GET /api/v1/auth/sessions"). */
  readonly http = new SampleSet();
  /** Reply and event frames with `data` (and `error`'s fields) left out: the envelope's own keys. */
  readonly replyFrames = new SampleSet();
  readonly eventFrames = new SampleSet();
  /** Every server event type seen, with how many times. */
  readonly eventCounts = new Map<string, number>();

  /** One text frame as the server sent it. */
  frame(text: string, requestType: string | undefined): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    const frame = value as Record<string, unknown>;
    if ('reply_to' in frame) {
      const envelope: Record<string, unknown> = { ...frame };
      if ('data' in envelope) envelope.data = null;
      if (typeof envelope.error === 'object' && envelope.error !== null) {
        envelope.error = { ...(envelope.error as object), code: 'internal', message: '' };
      }
      this.replyFrames.add(frame.ok === true ? 'ok' : 'error', envelope);
      if (frame.ok === true) {
        if (requestType === 'auth') this.auth.add('auth', frame.data);
        else if (requestType !== undefined) this.replies.add(requestType, frame.data);
      } else if (typeof frame.error === 'object' && frame.error !== null) {
        this.error(frame.error);
      }
      return;
    }
    if (typeof frame.type === 'string') {
      this.eventFrames.add('event', { ...frame, type: 'x', data: null });
      this.events.add(frame.type, frame.data);
      this.eventCounts.set(frame.type, (this.eventCounts.get(frame.type) ?? 0) + 1);
    }
  }

  error(body: unknown): void {
    const code = typeof body === 'object' && body !== null ? (body as { code?: unknown }).code : undefined;
    this.errors.add(typeof code === 'string' ? code : '?', body);
  }
}
