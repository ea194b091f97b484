// Arena for every buffer the module owns: weights, run state, KV cache, scratch.
//
// The stub runtime's allocator wraps around past 4 GiB without trapping and caps one block
// at 1 GiB, so the module does not use it. The arena is a bump pointer over linear memory
// that checks each request against a budget set by the host, grows memory on demand, and
// returns 0 (never a wrapped pointer) when a request does not fit. The host sizes the budget
// before placing weights and turns a 0 into an error that names the model and the bytes.
//
//   0 ........ __heap_base ....... arenaStart ....................... arenaTop ..... limit
//   | static data | AS stack/globals |  allocations, 64-byte aligned ->  | free budget |

/** Alignment of every allocation: one cache line, so SIMD loads never straddle one needlessly. */
export const ARENA_ALIGN: usize = 64;

/** wasm32 linear memory ends at 4 GiB (65536 pages of 64 KiB). */
const MAX_PAGES: u64 = 65536;

let arenaStart: usize = 0;
let arenaTop: usize = 0;
/** Bytes the arena may hand out in total, measured from arenaStart. */
let arenaBudget: u64 = 0;
/**
 * End of the highest allocation since instantiation. Memory above it has never been written, and
 * memory.grow zero-fills new pages, so only allocations below it need zeroing.
 */
let arenaWritten: usize = 0;

function alignUp(value: u64, alignment: u64): u64 {
  return (value + alignment - 1) & ~(alignment - 1);
}

/** Resets the arena and sets its budget in bytes. Returns 0 when the budget cannot fit in 4 GiB. */
export function arenaReset(budget: u64): i32 {
  const start = alignUp(<u64>__heap_base, <u64>ARENA_ALIGN);
  if (start + budget > MAX_PAGES * 65536) return 0;
  arenaStart = <usize>start;
  arenaTop = arenaStart;
  arenaBudget = budget;
  return 1;
}

/** Allocates `size` bytes, 64-byte aligned and zero-filled. Returns 0 when the budget is exceeded. */
export function arenaAlloc(size: u64): usize {
  if (arenaStart == 0) arenaReset(0);
  const begin = alignUp(<u64>arenaTop, <u64>ARENA_ALIGN);
  const end = begin + size;
  if (end - <u64>arenaStart > arenaBudget) return 0;
  if (end > MAX_PAGES * 65536) return 0;

  const neededPages = (end + 65535) >> 16;
  const currentPages = <u64>memory.size();
  if (neededPages > currentPages) {
    if (memory.grow(<i32>(neededPages - currentPages)) < 0) return 0;
  }

  // A reset arena reuses old bytes, so they are zeroed. Bytes above arenaWritten are still zero
  // from memory.grow, and leaving them alone spares a pass over fresh pages. The fill of a
  // 1.3 GiB model took 3.5 s, most of it first-touch page faults, which the weights' own writes
  // now take instead.
  if (<usize>begin < arenaWritten) memory.fill(<usize>begin, 0, <usize>min(end, <u64>arenaWritten) - <usize>begin);
  if (<usize>end > arenaWritten) arenaWritten = <usize>end;
  arenaTop = <usize>end;
  return <usize>begin;
}

/** Bytes handed out so far. */
export function arenaUsed(): u64 {
  return <u64>arenaTop - <u64>arenaStart;
}
