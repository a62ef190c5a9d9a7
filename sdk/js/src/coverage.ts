/**
 * Which seqs of one conversation the client knows about: each seq inside a covered span is either held
 * or known not to exist (skipped by the server, purged). Kept as sorted, disjoint, non-adjacent
 * inclusive spans so contiguity ("everything up to N") and holes ("N+1 … M-1 missing") are cheap.
 */
export interface SeqSpan {
  /** First seq of the span. */
  from: number;
  /** Last seq of the span (inclusive). */
  through: number;
}

export class SeqCoverage {
  private spans: SeqSpan[] = [];

  /** Marks `from`…`through` (inclusive) as known; a span with `through < from` is ignored. */
  add(from: number, through: number): void {
    if (through < from) return;
    const merged: SeqSpan[] = [];
    let next: SeqSpan = { from, through };
    let placed = false;
    for (const span of this.spans) {
      if (span.through + 1 < next.from) {
        merged.push(span);
      } else if (next.through + 1 < span.from) {
        if (!placed) {
          merged.push(next);
          placed = true;
        }
        merged.push(span);
      } else {
        // Overlapping or adjacent: absorb into the span being placed.
        next = { from: Math.min(span.from, next.from), through: Math.max(span.through, next.through) };
      }
    }
    if (!placed) merged.push(next);
    this.spans = merged;
  }

  has(seq: number): boolean {
    return this.spans.some((span) => span.from <= seq && seq <= span.through);
  }

  /** The highest seq `s` such that every seq in `start`…`s` is covered; `start - 1` when `start` is not. */
  contiguousFrom(start: number): number {
    const span = this.spans.find((candidate) => candidate.from <= start && start <= candidate.through);
    return span ? span.through : start - 1;
  }

  /**
   * The first hole at or after `start` that lies below some covered seq: the seqs a client should
   * fetch. Seqs above the highest covered one are not holes (nothing is known to exist there).
   */
  firstHole(start: number): SeqSpan | undefined {
    const known = this.contiguousFrom(start);
    const after = this.spans.find((span) => span.from > known + 1);
    return after ? { from: known + 1, through: after.from - 1 } : undefined;
  }

  highest(): number | undefined {
    return this.spans.at(-1)?.through;
  }

  clear(): void {
    this.spans = [];
  }

  toJSON(): SeqSpan[] {
    return this.spans.map((span) => ({ ...span }));
  }
}
