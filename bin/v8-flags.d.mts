/** The V8 flags the gateway runs with (see v8-flags.mjs). */
export declare const V8_FLAGS: readonly string[];
