/** A read that found no usable entry (absent, unreadable, or Redis unavailable). */
export const MISS = Symbol('miss');
