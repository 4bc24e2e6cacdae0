/** Slots of the ring: a value stays visible for between two and three rotations. */
const SLOTS = 3;

/**
 * The largest value recorded in the last minute or so, decaying: Micrometer's `TimeWindowMax`,
 * which backs the `_max` gauge it exports next to every timer (`hikaricp_connections_acquire_
 * seconds_max`). Every value goes into all slots; the ring rotates every `rotateMs`, clearing the
 * oldest slot, and reads come from the slot that has lived longest.
 */
export class WindowMax {
  readonly #rotateMs: number;
  readonly #slots = new Float64Array(SLOTS);
  #current = 0;
  #rotateAt: number;

  constructor(now: number, rotateMs = 20_000) {
    this.#rotateMs = rotateMs;
    this.#rotateAt = now + rotateMs;
  }

  /** Cheap enough for every checkout: a clock comparison and at most three stores. */
  record(value: number, now: number): void {
    if (now >= this.#rotateAt) this.#rotate(now);
    const slots = this.#slots;
    for (let i = 0; i < SLOTS; i += 1) if (value > slots[i]!) slots[i] = value;
  }

  read(now: number): number {
    if (now >= this.#rotateAt) this.#rotate(now);
    return this.#slots[this.#current]!;
  }

  #rotate(now: number): void {
    // Whole rotations elapsed; more than SLOTS of them clear everything.
    const steps = Math.min(SLOTS, Math.floor((now - this.#rotateAt) / this.#rotateMs) + 1);
    for (let i = 0; i < steps; i += 1) {
      this.#slots[this.#current] = 0;
      this.#current = (this.#current + 1) % SLOTS;
    }
    this.#rotateAt += Math.floor((now - this.#rotateAt) / this.#rotateMs + 1) * this.#rotateMs;
  }
}
