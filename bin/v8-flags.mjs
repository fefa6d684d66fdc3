// The V8 flags the gateway runs with: one list, applied by bin/switchyard.mjs and given to
// the bench's bare undici proxy as well, so the bench compares like with like.
//
// --no-allocation-site-pretenuring: V8 pretenures allocation sites whose objects it sees
//   survive; under proxy load that put per-request objects in old space, whose references then
//   kept every young object they touched alive through scavenges (~10 MB promoted and a 20 ms
//   pause per scavenge, against ~2 ms without). Measured with --trace-gc-nvp; README "Performance".
export const V8_FLAGS = ['--no-allocation-site-pretenuring'];
